"""Chain access: a JSON-RPC client, the NoxCompute contract and its companions.

- :mod:`errors`    what can go wrong; ``ChainUnavailable`` is never an answer
- :mod:`rpc`       JSON-RPC over httpx (sync and async), strict timeouts, bounded bodies
- :mod:`abi`       call encoding, result/revert/event decoding (eth-abi)
- :mod:`artifacts` the compiled contracts (committed; ``contracts/compile.mjs``)
- :mod:`tx`        signing and sending transactions (eth-account)
- :mod:`contract`  ``NoxCompute``, ``DemoApp``, ``ContractWallet``; deploy helpers
- :mod:`proofs`    the gateway's input and decryption proofs (EIP-712, NoxCompute domain)
- :mod:`erc1271`   ``isValidSignature`` of contract wallets
- :mod:`anvil`     a local anvil process from node_modules (tests, devnet)
"""

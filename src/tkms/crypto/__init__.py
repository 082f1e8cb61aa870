"""Pure cryptographic core: no I/O, no global state beyond caches of public values.

Primitives come from coincurve (libsecp256k1), cryptography (OpenSSL) and
safe-pysha3 (keccak, the backend eth-hash uses); the protocol layer
(Shamir, Lagrange, DLEQ) is ours.
"""

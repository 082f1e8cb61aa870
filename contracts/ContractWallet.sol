// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title A minimal ERC-1271 contract wallet for tkms's tests and devnet
/// @notice One owner EOA. A signature is valid for the wallet when it is the owner's ECDSA
/// signature of the digest itself (r ‖ s ‖ v, low s). The owner can make the wallet call
/// other contracts, e.g. DemoApp.register, so that the wallet owns a handle.
contract ContractWallet {
    bytes4 private constant _ERC1271_MAGIC = 0x1626ba7e;
    bytes4 private constant _ERC1271_INVALID = 0xffffffff;
    uint256 private constant _HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    address public immutable owner;

    error NotOwner(address caller);
    error CallFailed(bytes returnData);

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice ERC-1271: 0x1626ba7e when `signature` is the owner's over `hash`.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return _ERC1271_INVALID;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > _HALF_ORDER) return _ERC1271_INVALID;
        address signer = ecrecover(hash, v, r, s);
        return signer != address(0) && signer == owner ? _ERC1271_MAGIC : _ERC1271_INVALID;
    }

    /// @notice The owner makes the wallet call `target` (value in wei, from the wallet).
    function execute(address target, uint256 value, bytes calldata data)
        external
        returns (bytes memory)
    {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        (bool ok, bytes memory result) = target.call{value: value}(data);
        if (!ok) revert CallFailed(result);
        return result;
    }

    receive() external payable {}
}

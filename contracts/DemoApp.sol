// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice The part of NoxCompute an application calls.
interface INoxCompute {
    function validateInputProof(bytes32 handle, address owner, bytes calldata proof, uint8 handleType)
        external;
    function allow(bytes32 handle, address account) external;
    function addViewer(bytes32 handle, address viewer) external;
    function allowPublicDecryption(bytes32 handle) external;
    function allowTransient(bytes32 handle, address account) external;
    function disallowTransient(bytes32 handle, address account) external;
    function isAllowed(bytes32 handle, address account) external view returns (bool);
}

/// @title A minimal Nox-style application of tkms's devnet and tests
/// @notice Takes (handle, proof) from the gateway's POST /v0/secrets and registers the
/// caller as the handle's owner, the way a Nox dApp does: validateInputProof (which grants
/// this app transient access), then allow the caller and allow itself.
contract DemoApp {
    INoxCompute public immutable nox;

    /// @notice The handles registered through this app, by owner (for the devnet's demo).
    mapping(address owner => bytes32[]) private _handles;

    /// @notice What isAllowed answered inside the last checkTransient transaction.
    bool public lastTransientCheck;

    event Registered(address indexed owner, bytes32 indexed handle);

    constructor(INoxCompute nox_) {
        nox = nox_;
    }

    /// @notice Registers a gateway input for the caller: the caller and this app become
    /// admins of `handle`.
    function register(bytes32 handle, bytes calldata proof, uint8 handleType) external {
        nox.validateInputProof(handle, msg.sender, proof, handleType);
        nox.allow(handle, msg.sender);
        nox.allow(handle, address(this));
        _handles[msg.sender].push(handle);
        emit Registered(msg.sender, handle);
    }

    /// @notice Like register, without the caller's and the app's persistent grants: the app's
    /// access ends with the transaction.
    function validateOnly(bytes32 handle, bytes calldata proof, uint8 handleType) external {
        nox.validateInputProof(handle, msg.sender, proof, handleType);
        lastTransientCheck = nox.isAllowed(handle, address(this));
    }

    /// @notice Grants `account` transient access and records whether isAllowed saw it in
    /// this same transaction (the app must be allowed on the handle).
    function checkTransient(bytes32 handle, address account) external {
        nox.allowTransient(handle, account);
        lastTransientCheck = nox.isAllowed(handle, account);
    }

    /// @notice Grants transient access, drops it again, and records what isAllowed then says.
    function checkDisallowTransient(bytes32 handle, address account) external {
        nox.allowTransient(handle, account);
        nox.disallowTransient(handle, account);
        lastTransientCheck = nox.isAllowed(handle, account);
    }

    /// @notice The app, as an admin of `handle`, lets `viewer` read it.
    function shareWith(bytes32 handle, address viewer) external {
        nox.addViewer(handle, viewer);
    }

    /// @notice The app, as an admin of `handle`, makes it publicly decryptable.
    function publish(bytes32 handle) external {
        nox.allowPublicDecryption(handle);
    }

    function handlesOf(address owner) external view returns (bytes32[] memory) {
        return _handles[owner];
    }
}

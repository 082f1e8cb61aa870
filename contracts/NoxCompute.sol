// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title NoxCompute-compatible access control list of tkms
/// @notice Written for tkms from the facts in nox-compat.md (never from Nox's sources).
/// It has the ABI a Nox client, gateway and KMS use (same function signatures, so the
/// same selectors) and the same rules: the gateway's proof of an input handle, per-handle
/// admins (may grant further), viewers, public decryption, transient (EIP-1153) access,
/// and the gateway-signed proof of a public decryption. There is no revoke.
///
/// A handle is 32 bytes: version (1) ‖ chainId (uint32 BE) ‖ type code (1) ‖ attributes (1)
/// ‖ 25 random bytes. Attribute bit 0 clear marks a public handle, readable by everyone.
contract NoxCompute {
    // --- roles and configuration -------------------------------------------------------

    /// @notice May hand the admin and the upgrader roles on.
    address public admin;
    /// @notice May change the gateway and the KMS public key (Nox's upgrader role).
    address public upgrader;
    /// @notice The gateway wallet: signs input proofs and public decryption results.
    address public gateway;
    /// @notice The KMS public key Y, compressed SEC1 (33 bytes).
    bytes public kmsPublicKey;

    // --- access control list ------------------------------------------------------------

    mapping(bytes32 handle => mapping(address account => bool)) private _admins;
    mapping(bytes32 handle => mapping(address account => bool)) private _viewers;
    mapping(bytes32 handle => bool) private _publiclyDecryptable;

    // --- EIP-712 -------------------------------------------------------------------------

    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _NAME_HASH = keccak256("NoxCompute");
    bytes32 private constant _VERSION_HASH = keccak256("1");
    bytes32 private constant _HANDLE_PROOF_TYPEHASH =
        keccak256("HandleProof(bytes32 handle,address owner,address app,uint256 createdAt)");
    bytes32 private constant _DECRYPTION_PROOF_TYPEHASH =
        keccak256("DecryptionProof(bytes32 handle,bytes decryptedResult)");

    /// @dev secp256k1n / 2: a signature with a larger s is the malleated twin of a low-s one.
    uint256 private constant _HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @notice How long a gateway input proof stays valid after its createdAt.
    uint256 public constant INPUT_PROOF_VALIDITY = 1 hours;
    /// @dev owner (20) ‖ app (20) ‖ createdAt (32) ‖ signature (65).
    uint256 private constant _INPUT_PROOF_LENGTH = 137;
    uint256 private constant _SIGNATURE_LENGTH = 65;

    /// @dev Transient slots: keccak256(handle, account, _TRANSIENT_TAG). No persistent slot
    /// is ever written at such an address, and nothing else uses transient storage.
    bytes32 private constant _TRANSIENT_TAG = keccak256("tkms.NoxCompute.transient");

    // --- events --------------------------------------------------------------------------

    event Allowed(address indexed sender, address indexed account, bytes32 indexed handle);
    event ViewerAdded(address indexed sender, address indexed viewer, bytes32 indexed handle);
    event MarkedAsPubliclyDecryptable(address indexed sender, bytes32 indexed handle);
    event KmsPublicKeyUpdated(bytes kmsPublicKey);
    event GatewayUpdated(address gateway);
    event AdminChanged(address admin);
    event UpgraderChanged(address upgrader);

    // --- errors --------------------------------------------------------------------------

    error NotAdmin(address caller);
    error NotUpgrader(address caller);
    error ZeroAddress();
    error InvalidKmsPublicKey();
    error NotAllowed(bytes32 handle, address caller);
    error PublicHandle(bytes32 handle);
    error HandleChainMismatch(bytes32 handle, uint256 chainId);
    error HandleTypeMismatch(bytes32 handle, uint8 expected);
    error InvalidProofLength(uint256 length);
    error ProofExpired(uint256 createdAt, uint256 expiredAt);
    error AppMismatch(address app, address caller);
    error OwnerMismatch(address proofOwner, address owner);
    error InvalidSignature();
    error InvalidGatewaySignature(address signer);

    /// @param admin_ may hand both roles on (Nox's DEFAULT_ADMIN_ROLE).
    /// @param upgrader_ may set the gateway and the KMS public key.
    /// @param kmsPublicKey_ the KMS key Y, compressed SEC1, 33 bytes.
    /// @param gateway_ the gateway wallet.
    /// These are the arguments of Nox's initialize(admin, upgrader, kmsPublicKey, gateway).
    constructor(address admin_, address upgrader_, bytes memory kmsPublicKey_, address gateway_) {
        if (admin_ == address(0) || upgrader_ == address(0)) revert ZeroAddress();
        admin = admin_;
        upgrader = upgrader_;
        emit AdminChanged(admin_);
        emit UpgraderChanged(upgrader_);
        _setKmsPublicKey(kmsPublicKey_);
        _setGateway(gateway_);
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier onlyUpgrader() {
        if (msg.sender != upgrader) revert NotUpgrader(msg.sender);
        _;
    }

    /// @dev The caller may grant on `handle`, which must not be public (everyone reads those).
    modifier onlyAllowedOnPrivate(bytes32 handle) {
        if (_isPublicHandle(handle)) revert PublicHandle(handle);
        if (!isAllowed(handle, msg.sender)) revert NotAllowed(handle, msg.sender);
        _;
    }

    // --- roles ---------------------------------------------------------------------------

    function setAdmin(address newAdmin) external onlyAdmin {
        if (newAdmin == address(0)) revert ZeroAddress();
        admin = newAdmin;
        emit AdminChanged(newAdmin);
    }

    function setUpgrader(address newUpgrader) external onlyAdmin {
        if (newUpgrader == address(0)) revert ZeroAddress();
        upgrader = newUpgrader;
        emit UpgraderChanged(newUpgrader);
    }

    function setGateway(address newGateway) external onlyUpgrader {
        _setGateway(newGateway);
    }

    function setKmsPublicKey(bytes calldata newKey) external onlyUpgrader {
        _setKmsPublicKey(newKey);
    }

    function _setGateway(address newGateway) private {
        if (newGateway == address(0)) revert ZeroAddress();
        gateway = newGateway;
        emit GatewayUpdated(newGateway);
    }

    function _setKmsPublicKey(bytes memory newKey) private {
        // A compressed SEC1 point: 0x02 or 0x03, then x. (Whether x is on the curve is
        // the KMS's check at start: it compares this key with its own as a point.)
        if (newKey.length != 33 || (newKey[0] != 0x02 && newKey[0] != 0x03)) {
            revert InvalidKmsPublicKey();
        }
        kmsPublicKey = newKey;
        emit KmsPublicKeyUpdated(newKey);
    }

    // --- inputs --------------------------------------------------------------------------

    /// @notice Checks the gateway's proof that `handle` was made for `owner` and the calling
    /// application, then grants the caller transient access (for this transaction) so that
    /// it may allow the owner and itself.
    /// @param proof owner (20) ‖ app (20) ‖ createdAt (uint256 BE) ‖ gateway signature (65)
    /// of HandleProof(handle, owner, app, createdAt) in the NoxCompute domain.
    /// @param handleType the Solidity type code the application expects (handle byte 5).
    function validateInputProof(bytes32 handle, address owner, bytes calldata proof, uint8 handleType)
        external
    {
        if (_handleChainId(handle) != block.chainid) revert HandleChainMismatch(handle, block.chainid);
        if (_handleType(handle) != handleType) revert HandleTypeMismatch(handle, handleType);
        if (proof.length != _INPUT_PROOF_LENGTH) revert InvalidProofLength(proof.length);

        address proofOwner = address(bytes20(proof[0:20]));
        address app = address(bytes20(proof[20:40]));
        uint256 createdAt = uint256(bytes32(proof[40:72]));

        // A createdAt ahead of block.timestamp is fine (the gateway's clock may lead the
        // chain's by a few seconds); only the end of the validity window counts.
        if (block.timestamp > createdAt + INPUT_PROOF_VALIDITY) {
            revert ProofExpired(createdAt, createdAt + INPUT_PROOF_VALIDITY);
        }
        if (app != msg.sender) revert AppMismatch(app, msg.sender);
        if (proofOwner != owner) revert OwnerMismatch(proofOwner, owner);

        bytes32 structHash = keccak256(abi.encode(_HANDLE_PROOF_TYPEHASH, handle, owner, app, createdAt));
        address signer = _recover(_hashTypedData(structHash), proof[72:137]);
        if (signer != gateway) revert InvalidGatewaySignature(signer);

        _setTransient(handle, msg.sender, true);
    }

    // --- access control ------------------------------------------------------------------

    /// @notice Makes `account` a persistent admin of `handle` (may grant further, and read).
    function allow(bytes32 handle, address account) external onlyAllowedOnPrivate(handle) {
        _admins[handle][account] = true;
        emit Allowed(msg.sender, account, handle);
    }

    /// @notice Lets `viewer` read `handle` (decrypt through the gateway), without granting.
    function addViewer(bytes32 handle, address viewer) external onlyAllowedOnPrivate(handle) {
        _viewers[handle][viewer] = true;
        emit ViewerAdded(msg.sender, viewer, handle);
    }

    /// @notice Lets everyone read `handle` through the gateway's public decryption.
    function allowPublicDecryption(bytes32 handle) external onlyAllowedOnPrivate(handle) {
        _publiclyDecryptable[handle] = true;
        emit MarkedAsPubliclyDecryptable(msg.sender, handle);
    }

    /// @notice Grants `account` access to `handle` until the end of this transaction.
    function allowTransient(bytes32 handle, address account) external onlyAllowedOnPrivate(handle) {
        _setTransient(handle, account, true);
    }

    /// @notice Drops a transient grant before the transaction ends. The caller must be
    /// allowed on the handle, or drop its own grant.
    function disallowTransient(bytes32 handle, address account) external {
        if (account != msg.sender) {
            if (_isPublicHandle(handle)) revert PublicHandle(handle);
            if (!isAllowed(handle, msg.sender)) revert NotAllowed(handle, msg.sender);
        }
        _setTransient(handle, account, false);
    }

    /// @notice True for a public handle, a transient grant of this transaction, or an admin.
    function isAllowed(bytes32 handle, address account) public view returns (bool) {
        return _isPublicHandle(handle) || _admins[handle][account] || _getTransient(handle, account);
    }

    /// @notice Whether `account` may read `handle`: public, publicly decryptable, viewer or
    /// allowed (the gateway's ACL question).
    function isViewer(bytes32 handle, address account) external view returns (bool) {
        return _publiclyDecryptable[handle] || _viewers[handle][account] || isAllowed(handle, account);
    }

    /// @notice A public handle, or one marked with allowPublicDecryption.
    function isPubliclyDecryptable(bytes32 handle) public view returns (bool) {
        return _isPublicHandle(handle) || _publiclyDecryptable[handle];
    }

    // --- public decryption ---------------------------------------------------------------

    /// @notice Checks the gateway's proof of a public decryption and returns the plaintext.
    /// @param proof gateway signature (65) ‖ plaintext at its natural width; the signature
    /// is over DecryptionProof(handle, plaintext) in the NoxCompute domain.
    function validateDecryptionProof(bytes32 handle, bytes calldata proof)
        external
        view
        returns (bytes memory)
    {
        if (proof.length < _SIGNATURE_LENGTH) revert InvalidProofLength(proof.length);
        bytes calldata value = proof[_SIGNATURE_LENGTH:];
        bytes32 structHash = keccak256(abi.encode(_DECRYPTION_PROOF_TYPEHASH, handle, keccak256(value)));
        address signer = _recover(_hashTypedData(structHash), proof[0:_SIGNATURE_LENGTH]);
        if (signer != gateway) revert InvalidGatewaySignature(signer);
        return value;
    }

    /// @notice The EIP-712 domain separator: NoxCompute, version 1, this chain, this contract.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this)));
    }

    // --- internals -----------------------------------------------------------------------

    function _handleChainId(bytes32 handle) private pure returns (uint256) {
        return uint32(uint256(handle) >> 216);
    }

    function _handleType(bytes32 handle) private pure returns (uint8) {
        return uint8(uint256(handle) >> 208);
    }

    function _isPublicHandle(bytes32 handle) private pure returns (bool) {
        return uint8(uint256(handle) >> 200) & 0x01 == 0;
    }

    function _hashTypedData(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(), structHash));
    }

    /// @dev r ‖ s ‖ v with v in {27, 28} (0 and 1 accepted), low s; never returns address(0).
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > _HALF_ORDER) revert InvalidSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
        return signer;
    }

    function _transientSlot(bytes32 handle, address account) private pure returns (bytes32) {
        return keccak256(abi.encode(handle, account, _TRANSIENT_TAG));
    }

    function _setTransient(bytes32 handle, address account, bool value) private {
        bytes32 slot = _transientSlot(handle, account);
        assembly ("memory-safe") {
            tstore(slot, value)
        }
    }

    function _getTransient(bytes32 handle, address account) private view returns (bool value) {
        bytes32 slot = _transientSlot(handle, account);
        assembly ("memory-safe") {
            value := tload(slot)
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// @title NodeRegistry (version 1)
/// @notice The network's nodes as assets with owners: each node is an ERC-721 token held by its
///         owner's wallet, with the node's Ed25519 signing keys, its class (ground AirNode,
///         high-altitude relay platform, backhaul) and a claimed H3 location. A key is valid
///         for reports whose event time (unix milliseconds) lies in [validFromMs, validUntilMs);
///         rotation ends the current key where the next begins, revocation ends a key (or the
///         whole node) from a given event time. Validity only ever shrinks, so the registry's
///         current state answers "was this key valid at event time t" for any t, and a report
///         signed before a revocation keeps verifying after it.
/// @dev    The EVM has no Ed25519 precompile: signatures are verified off chain, at ingest and
///         by auditors, against the keys stored here. tokenId = uint256(keccak256(nodeId)).
///         keyId = sha256(public key), the key id every signature names.
contract NodeRegistry is ERC721, AccessControl {
    enum NodeClass {
        GroundAirNode,
        HighAltitudeRelay,
        Backhaul
    }

    struct Key {
        bytes32 publicKey;
        uint64 validFromMs;
        uint64 validUntilMs;
    }

    struct Node {
        string nodeId;
        NodeClass nodeClass;
        uint64 h3Cell;
        uint64 revokedFromMs;
        uint64 registeredAt;
    }

    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    uint256 public constant registryVersion = 1;
    uint64 public constant OPEN = type(uint64).max; // no end (yet)

    mapping(uint256 => Node) private nodes;
    mapping(uint256 => Key[]) private nodeKeys;
    mapping(bytes32 => uint256) public nodeOfKey; // keyId => tokenId; a key serves one node, ever
    uint256[] private tokenIds;

    event NodeRegistered(
        uint256 indexed tokenId, string nodeId, NodeClass nodeClass, uint64 h3Cell
    );
    event KeyAdded(
        uint256 indexed tokenId,
        uint256 keyIndex,
        bytes32 keyId,
        bytes32 publicKey,
        uint64 validFromMs
    );
    event KeyEnded(uint256 indexed tokenId, uint256 keyIndex, uint64 validUntilMs);
    event NodeRevoked(uint256 indexed tokenId, uint64 revokedFromMs);

    error InvalidNodeId(string nodeId);
    error EmptyKey();
    error KeyInUse(bytes32 keyId, uint256 tokenId);
    error NotNodeController(address caller, uint256 tokenId);
    error NodeIsRevoked(uint256 tokenId, uint64 revokedFromMs);
    error RotationNotAfterCurrentKey(uint64 fromMs, uint64 currentValidFromMs);
    error NoSuchKey(uint256 tokenId, uint256 keyIndex);
    error NotShortening(uint64 fromMs, uint64 validFromMs, uint64 validUntilMs);
    error LengthMismatch();

    constructor(address admin) ERC721("RDA Network Node", "RDANODE") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    /// @notice Mint node ``nodeId`` to ``owner`` with its first signing key.
    function register(
        address owner,
        string calldata nodeId,
        NodeClass nodeClass,
        uint64 h3Cell,
        bytes32 publicKey,
        uint64 validFromMs
    ) external onlyRole(REGISTRAR_ROLE) returns (uint256 tokenId) {
        return _register(owner, nodeId, nodeClass, h3Cell, publicKey, validFromMs);
    }

    /// @notice Several nodes in one transaction (a fleet onboarded at once), each as register().
    function registerMany(
        address[] calldata owners,
        string[] calldata nodeIds,
        NodeClass[] calldata nodeClasses,
        uint64[] calldata h3Cells,
        bytes32[] calldata publicKeys,
        uint64 validFromMs
    ) external onlyRole(REGISTRAR_ROLE) {
        uint256 n = nodeIds.length;
        if (
            owners.length != n || nodeClasses.length != n || h3Cells.length != n
                || publicKeys.length != n
        ) revert LengthMismatch();
        for (uint256 i = 0; i < n; i++) {
            _register(owners[i], nodeIds[i], nodeClasses[i], h3Cells[i], publicKeys[i], validFromMs);
        }
    }

    /// @notice A new signing key from ``fromMs`` on; the current key ends there.
    function rotateKey(uint256 tokenId, bytes32 publicKey, uint64 fromMs) external {
        _checkController(tokenId, false);
        Node storage node = nodes[tokenId];
        if (node.revokedFromMs <= fromMs) revert NodeIsRevoked(tokenId, node.revokedFromMs);
        Key[] storage list = nodeKeys[tokenId];
        Key storage current = list[list.length - 1];
        if (fromMs <= current.validFromMs) {
            revert RotationNotAfterCurrentKey(fromMs, current.validFromMs);
        }
        if (fromMs < current.validUntilMs) {
            current.validUntilMs = fromMs;
            emit KeyEnded(tokenId, list.length - 1, fromMs);
        }
        _addKey(tokenId, publicKey, fromMs);
    }

    /// @notice Key ``keyIndex`` signs nothing from ``fromMs`` on (its owner, or a registrar).
    function revokeKey(uint256 tokenId, uint256 keyIndex, uint64 fromMs) external {
        _checkController(tokenId, true);
        Key[] storage list = nodeKeys[tokenId];
        if (keyIndex >= list.length) revert NoSuchKey(tokenId, keyIndex);
        Key storage key = list[keyIndex];
        if (fromMs < key.validFromMs || fromMs >= key.validUntilMs) {
            revert NotShortening(fromMs, key.validFromMs, key.validUntilMs);
        }
        key.validUntilMs = fromMs;
        emit KeyEnded(tokenId, keyIndex, fromMs);
    }

    /// @notice The node reports nothing from ``fromMs`` on, whatever key signs (its owner, or
    ///         a registrar). The token stays, with its history.
    function revokeNode(uint256 tokenId, uint64 fromMs) external {
        _checkController(tokenId, true);
        Node storage node = nodes[tokenId];
        if (fromMs >= node.revokedFromMs) revert NodeIsRevoked(tokenId, node.revokedFromMs);
        node.revokedFromMs = fromMs;
        emit NodeRevoked(tokenId, fromMs);
    }

    function tokenIdOf(string calldata nodeId) public pure returns (uint256) {
        return uint256(keccak256(bytes(nodeId)));
    }

    function nodeCount() external view returns (uint256) {
        return tokenIds.length;
    }

    function tokenIdAt(uint256 index) external view returns (uint256) {
        return tokenIds[index];
    }

    function nodeInfo(uint256 tokenId)
        external
        view
        returns (
            string memory nodeId,
            NodeClass nodeClass,
            uint64 h3Cell,
            uint64 revokedFromMs,
            uint64 registeredAt,
            address owner
        )
    {
        owner = _requireOwned(tokenId);
        Node storage node = nodes[tokenId];
        return
            (node.nodeId, node.nodeClass, node.h3Cell, node.revokedFromMs, node.registeredAt, owner);
    }

    function keysOf(uint256 tokenId) external view returns (Key[] memory) {
        _requireOwned(tokenId);
        return nodeKeys[tokenId];
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, AccessControl)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    function _register(
        address owner,
        string calldata nodeId,
        NodeClass nodeClass,
        uint64 h3Cell,
        bytes32 publicKey,
        uint64 validFromMs
    ) private returns (uint256 tokenId) {
        _checkNodeId(nodeId);
        tokenId = tokenIdOf(nodeId);
        _mint(owner, tokenId); // reverts for a node id already registered
        nodes[tokenId] = Node(nodeId, nodeClass, h3Cell, OPEN, uint64(block.timestamp));
        tokenIds.push(tokenId);
        emit NodeRegistered(tokenId, nodeId, nodeClass, h3Cell);
        _addKey(tokenId, publicKey, validFromMs);
    }

    function _addKey(uint256 tokenId, bytes32 publicKey, uint64 validFromMs) private {
        if (publicKey == bytes32(0)) revert EmptyKey();
        bytes32 keyId = sha256(abi.encodePacked(publicKey));
        uint256 holder = nodeOfKey[keyId];
        if (holder != 0) revert KeyInUse(keyId, holder);
        nodeOfKey[keyId] = tokenId;
        nodeKeys[tokenId].push(Key(publicKey, validFromMs, OPEN));
        emit KeyAdded(tokenId, nodeKeys[tokenId].length - 1, keyId, publicKey, validFromMs);
    }

    /// The token's owner or an account it approved; with ``registrarToo``, a registrar as well.
    function _checkController(uint256 tokenId, bool registrarToo) private view {
        address owner = _requireOwned(tokenId);
        if (_isAuthorized(owner, msg.sender, tokenId)) return;
        if (registrarToo && hasRole(REGISTRAR_ROLE, msg.sender)) return;
        revert NotNodeController(msg.sender, tokenId);
    }

    /// 1 to 64 characters of [A-Za-z0-9._:-]: safe in file names, headers and logs.
    function _checkNodeId(string calldata nodeId) private pure {
        bytes calldata b = bytes(nodeId);
        if (b.length == 0 || b.length > 64) revert InvalidNodeId(nodeId);
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")
                || c == "." || c == "_" || c == ":" || c == "-";
            if (!ok) revert InvalidNodeId(nodeId);
        }
    }
}

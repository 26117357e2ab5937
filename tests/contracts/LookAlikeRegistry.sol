// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice A dishonest publisher's look-alike of AnchorRegistry (tests only): the same code and
///         answers, plus what the real contract cannot do — roll a log's latest() back and date
///         an anchor earlier. A verifier that trusted its answers would verify either.
contract LookAlikeRegistry {
    struct Anchor {
        bytes32 root;
        bytes32 manifestHash;
        uint64 anchoredAt;
        uint64 blockNumber;
        uint64 previousTreeSize;
    }

    uint256 public constant registryVersion = 2;
    address public immutable owner;
    bytes32 public identityHash;
    mapping(bytes32 => uint64) public identityPublishedAt;
    bytes private identity;
    mapping(bytes32 => mapping(uint64 => Anchor)) private anchors;
    mapping(bytes32 => uint64) private latestSize;

    event Anchored(bytes32 indexed datasetId, uint64 treeSize, bytes32 root, bytes32 manifestHash);
    event IdentityPublished(bytes32 indexed identityHash);

    error NotOwner(address caller);
    error ConflictingAnchor(bytes32 datasetId, uint64 treeSize, bytes32 anchoredRoot);
    error TreeSizeNotGrowing(bytes32 datasetId, uint64 treeSize, uint64 latestTreeSize);
    error PreviousMismatch(bytes32 datasetId, uint64 previousTreeSize, uint64 latestTreeSize);
    error EmptyRoot();
    error EmptyIdentity();
    error LengthMismatch();

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Publish (or replace) the publisher identity document: its exact bytes are kept,
    ///         and identityHash = SHA-256 of them. Earlier documents stay listed in
    ///         identityPublishedAt (block number), so a verifier can tell "superseded" from "never".
    function publishIdentity(bytes calldata document) external onlyOwner {
        if (document.length == 0) revert EmptyIdentity();
        bytes32 hash = sha256(document);
        identity = document;
        identityHash = hash;
        if (identityPublishedAt[hash] == 0) identityPublishedAt[hash] = uint64(block.number);
        emit IdentityPublished(hash);
    }

    function identityDocument() external view returns (bytes memory) {
        return identity;
    }

    /// @param previousTreeSize the size of the checkpoint this one follows (0 for the first):
    ///        it must be the latest anchored size, so a reset or forked history is refused.
    /// @return created false when this exact anchor already existed (an idempotent retry).
    function anchor(
        bytes32 datasetId,
        uint64 treeSize,
        bytes32 root,
        bytes32 manifestHash,
        uint64 previousTreeSize
    ) external onlyOwner returns (bool created) {
        return _anchor(datasetId, treeSize, root, manifestHash, previousTreeSize);
    }

    /// @notice Several checkpoints in one transaction, each under the same rules as anchor().
    function anchorMany(
        bytes32[] calldata datasetIds,
        uint64[] calldata treeSizes,
        bytes32[] calldata roots,
        bytes32[] calldata manifestHashes,
        uint64[] calldata previousTreeSizes
    ) external onlyOwner returns (uint256 createdCount) {
        uint256 n = datasetIds.length;
        if (
            treeSizes.length != n || roots.length != n || manifestHashes.length != n
                || previousTreeSizes.length != n
        ) {
            revert LengthMismatch();
        }
        for (uint256 i = 0; i < n; i++) {
            if (_anchor(datasetIds[i], treeSizes[i], roots[i], manifestHashes[i], previousTreeSizes[i]))
            {
                createdCount++;
            }
        }
    }

    function getAnchor(bytes32 datasetId, uint64 treeSize)
        external
        view
        returns (bytes32 root, bytes32 manifestHash, uint64 anchoredAt, uint64 blockNumber)
    {
        Anchor storage a = anchors[datasetId][treeSize];
        return (a.root, a.manifestHash, a.anchoredAt, a.blockNumber);
    }

    /// @return the anchored size before treeSize (0: treeSize is the first, or not anchored).
    function previousTreeSize(bytes32 datasetId, uint64 treeSize) external view returns (uint64) {
        return anchors[datasetId][treeSize].previousTreeSize;
    }

    function latest(bytes32 datasetId)
        external
        view
        returns (
            uint64 treeSize,
            bytes32 root,
            bytes32 manifestHash,
            uint64 anchoredAt,
            uint64 blockNumber
        )
    {
        treeSize = latestSize[datasetId];
        Anchor storage a = anchors[datasetId][treeSize];
        return (treeSize, a.root, a.manifestHash, a.anchoredAt, a.blockNumber);
    }

    function _anchor(
        bytes32 datasetId,
        uint64 treeSize,
        bytes32 root,
        bytes32 manifestHash,
        uint64 previous
    ) private returns (bool) {
        if (root == bytes32(0)) revert EmptyRoot();
        Anchor storage existing = anchors[datasetId][treeSize];
        if (existing.root != bytes32(0)) {
            if (existing.root == root && existing.manifestHash == manifestHash) return false;
            revert ConflictingAnchor(datasetId, treeSize, existing.root);
        }
        uint64 latestTreeSize = latestSize[datasetId];
        if (treeSize <= latestTreeSize) {
            revert TreeSizeNotGrowing(datasetId, treeSize, latestTreeSize);
        }
        if (previous != latestTreeSize) {
            revert PreviousMismatch(datasetId, previous, latestTreeSize);
        }
        anchors[datasetId][treeSize] =
            Anchor(root, manifestHash, uint64(block.timestamp), uint64(block.number), previous);
        latestSize[datasetId] = treeSize;
        emit Anchored(datasetId, treeSize, root, manifestHash);
        return true;
    }

    function setLatest(bytes32 datasetId, uint64 treeSize) external onlyOwner {
        latestSize[datasetId] = treeSize;
    }

    function setAnchoredAt(bytes32 datasetId, uint64 treeSize, uint64 at) external onlyOwner {
        anchors[datasetId][treeSize].anchoredAt = at;
    }
}

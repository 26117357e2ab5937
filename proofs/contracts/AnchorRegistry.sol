// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title AnchorRegistry
/// @notice Anchors checkpoints of append-only dataset logs: (dataset, tree size) -> (RFC 9162
///         root, manifest hash). An anchor proves the dataset had this content at this block's
///         time. History cannot be rewritten: an anchored (dataset, size) never changes, and a
///         dataset's tree size only grows.
/// @dev    datasetId is SHA-256 of the UTF-8 dataset id (e.g. "radio_kpi.v1").
contract AnchorRegistry {
    struct Anchor {
        bytes32 root;
        bytes32 manifestHash;
        uint64 anchoredAt;
        uint64 blockNumber;
    }

    address public immutable owner;
    mapping(bytes32 => mapping(uint64 => Anchor)) private anchors;
    mapping(bytes32 => uint64) private latestSize;

    event Anchored(bytes32 indexed datasetId, uint64 treeSize, bytes32 root, bytes32 manifestHash);

    error NotOwner(address caller);
    error ConflictingAnchor(bytes32 datasetId, uint64 treeSize, bytes32 anchoredRoot);
    error TreeSizeNotGrowing(bytes32 datasetId, uint64 treeSize, uint64 latestTreeSize);
    error EmptyRoot();
    error LengthMismatch();

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @return created false when this exact anchor already existed (an idempotent retry).
    function anchor(bytes32 datasetId, uint64 treeSize, bytes32 root, bytes32 manifestHash)
        external
        onlyOwner
        returns (bool created)
    {
        return _anchor(datasetId, treeSize, root, manifestHash);
    }

    /// @notice Several checkpoints in one transaction, each under the same rules as anchor().
    function anchorMany(
        bytes32[] calldata datasetIds,
        uint64[] calldata treeSizes,
        bytes32[] calldata roots,
        bytes32[] calldata manifestHashes
    ) external onlyOwner returns (uint256 createdCount) {
        uint256 n = datasetIds.length;
        if (treeSizes.length != n || roots.length != n || manifestHashes.length != n) {
            revert LengthMismatch();
        }
        for (uint256 i = 0; i < n; i++) {
            if (_anchor(datasetIds[i], treeSizes[i], roots[i], manifestHashes[i])) {
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

    function _anchor(bytes32 datasetId, uint64 treeSize, bytes32 root, bytes32 manifestHash)
        private
        returns (bool)
    {
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
        anchors[datasetId][treeSize] =
            Anchor(root, manifestHash, uint64(block.timestamp), uint64(block.number));
        latestSize[datasetId] = treeSize;
        emit Anchored(datasetId, treeSize, root, manifestHash);
        return true;
    }
}

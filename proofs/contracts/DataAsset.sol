// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// The reads DataAsset needs from the publisher's AnchorRegistry (version 2).
interface IAnchorRegistry {
    function owner() external view returns (address);

    function getAnchor(bytes32 datasetId, uint64 treeSize)
        external
        view
        returns (bytes32 root, bytes32 manifestHash, uint64 anchoredAt, uint64 blockNumber);
}

/// @title DataAsset (version 1)
/// @notice Each dataset is one ERC-721 token, owned by the publisher's wallet. Its metadata
///         commits to the dataset's Data Package manifest and to its licence terms by hash, and
///         points at the publisher's AnchorRegistry, where every checkpoint of the dataset is
///         anchored. For each checkpoint the publisher commits the contribution table (node
///         token id -> rows of that node in the checkpoint) as the root of a Merkle sum tree;
///         the nodes' share of every sale is split by it (DataLicences). Transferring the token
///         moves the revenue rights; the registry, and so the publisher identity and its signing
///         keys, stays the same, so the data stays verifiable across a transfer.
/// @dev    Only the registry's owner (the publisher, the one account that anchors) mints and
///         commits contributions, and only for checkpoints anchored in that registry.
contract DataAsset is ERC721 {
    struct Asset {
        address registry; // the publisher's AnchorRegistry
        bytes32 datasetId; // SHA-256 of the UTF-8 log id, as in the registry
        bytes32 manifestHash; // the anchored manifest (Data Package) of the minting checkpoint
        bytes32 termsHash; // SHA-256 of the asset's terms document (RFC 8785 JSON)
        uint16 nodeShareBps; // share of each sale for the nodes, declared in the terms
        uint64 latestTreeSize; // the newest checkpoint with a committed contribution table
    }

    struct Checkpoint {
        bytes32 contributionRoot; // Merkle sum tree root over (node token id, rows); 0: no rows
        uint64 nodeRows; // the tree's sum: rows of the checkpoint that name a node
        bytes32 manifestHash; // the manifest anchored for this checkpoint
        uint64 committedAt;
    }

    uint256 public constant assetVersion = 1;
    uint16 public constant MAX_BPS = 10_000;
    uint256 public assetCount;
    mapping(uint256 => Asset) private assets;
    mapping(uint256 => mapping(uint64 => Checkpoint)) private checkpoints;
    /// registry => dataset id => token id (0: none); one asset per dataset and publisher
    mapping(address => mapping(bytes32 => uint256)) public assetOf;

    event AssetMinted(
        uint256 indexed tokenId,
        address indexed registry,
        bytes32 indexed datasetId,
        bytes32 manifestHash,
        bytes32 termsHash,
        uint16 nodeShareBps
    );
    event ContributionsCommitted(
        uint256 indexed tokenId,
        uint64 treeSize,
        bytes32 contributionRoot,
        uint64 nodeRows,
        bytes32 manifestHash
    );

    error NotPublisher(address caller, address publisher);
    error AlreadyMinted(uint256 tokenId);
    error ShareTooLarge(uint16 nodeShareBps);
    error NotAnchored(bytes32 datasetId, uint64 treeSize);
    error CheckpointNotNewer(uint64 treeSize, uint64 latestTreeSize);
    error RowsExceedTreeSize(uint64 nodeRows, uint64 treeSize);
    error EmptyContributionRoot();
    error LengthMismatch();

    constructor() ERC721("RDA Data Asset", "RDAASSET") {}

    /// @notice Mint the token of ``datasetId`` (anchored in ``registry`` at ``treeSize``) to the
    ///         caller, the registry's owner, with the contribution table of that checkpoint.
    function mint(
        address registry,
        bytes32 datasetId,
        uint64 treeSize,
        bytes32 termsHash,
        uint16 nodeShareBps,
        bytes32 contributionRoot,
        uint64 nodeRows
    ) external returns (uint256 tokenId) {
        _checkPublisher(registry);
        uint256 existing = assetOf[registry][datasetId];
        if (existing != 0) revert AlreadyMinted(existing);
        if (nodeShareBps > MAX_BPS) revert ShareTooLarge(nodeShareBps);
        bytes32 manifestHash = _anchoredManifest(registry, datasetId, treeSize);
        tokenId = ++assetCount;
        assetOf[registry][datasetId] = tokenId;
        assets[tokenId] = Asset(registry, datasetId, manifestHash, termsHash, nodeShareBps, 0);
        _mint(msg.sender, tokenId);
        emit AssetMinted(tokenId, registry, datasetId, manifestHash, termsHash, nodeShareBps);
        _commit(tokenId, treeSize, contributionRoot, nodeRows);
    }

    /// @notice Commit the contribution tables of newer anchored checkpoints (the publisher, in
    ///         the batch that anchors them). Sales license the newest committed checkpoint.
    function commitContributions(
        uint256[] calldata tokenIds,
        uint64[] calldata treeSizes,
        bytes32[] calldata roots,
        uint64[] calldata nodeRows
    ) external {
        uint256 n = tokenIds.length;
        if (treeSizes.length != n || roots.length != n || nodeRows.length != n) {
            revert LengthMismatch();
        }
        for (uint256 i = 0; i < n; i++) {
            _requireOwned(tokenIds[i]);
            _checkPublisher(assets[tokenIds[i]].registry);
            _commit(tokenIds[i], treeSizes[i], roots[i], nodeRows[i]);
        }
    }

    function assetInfo(uint256 tokenId)
        external
        view
        returns (
            address registry,
            bytes32 datasetId,
            bytes32 manifestHash,
            bytes32 termsHash,
            uint16 nodeShareBps,
            uint64 latestTreeSize,
            address owner
        )
    {
        owner = _requireOwned(tokenId);
        Asset storage a = assets[tokenId];
        return (
            a.registry, a.datasetId, a.manifestHash, a.termsHash, a.nodeShareBps, a.latestTreeSize, owner
        );
    }

    function checkpointInfo(uint256 tokenId, uint64 treeSize)
        external
        view
        returns (bytes32 contributionRoot, uint64 nodeRows, bytes32 manifestHash, uint64 committedAt)
    {
        Checkpoint storage c = checkpoints[tokenId][treeSize];
        return (c.contributionRoot, c.nodeRows, c.manifestHash, c.committedAt);
    }

    /// @notice What a sale needs in one call: owner, node share and the licensed checkpoint.
    function saleInfo(uint256 tokenId)
        external
        view
        returns (address owner, uint16 nodeShareBps, uint64 treeSize, uint64 nodeRows)
    {
        owner = _requireOwned(tokenId);
        Asset storage a = assets[tokenId];
        return (owner, a.nodeShareBps, a.latestTreeSize, checkpoints[tokenId][a.latestTreeSize].nodeRows);
    }

    function _commit(uint256 tokenId, uint64 treeSize, bytes32 root, uint64 nodeRows) private {
        Asset storage a = assets[tokenId];
        if (treeSize <= a.latestTreeSize) revert CheckpointNotNewer(treeSize, a.latestTreeSize);
        if (nodeRows > treeSize) revert RowsExceedTreeSize(nodeRows, treeSize);
        if ((root == bytes32(0)) != (nodeRows == 0)) revert EmptyContributionRoot();
        bytes32 manifestHash = _anchoredManifest(a.registry, a.datasetId, treeSize);
        checkpoints[tokenId][treeSize] = Checkpoint(root, nodeRows, manifestHash, uint64(block.timestamp));
        a.latestTreeSize = treeSize;
        emit ContributionsCommitted(tokenId, treeSize, root, nodeRows, manifestHash);
    }

    function _checkPublisher(address registry) private view {
        address publisher = IAnchorRegistry(registry).owner();
        if (msg.sender != publisher) revert NotPublisher(msg.sender, publisher);
    }

    function _anchoredManifest(address registry, bytes32 datasetId, uint64 treeSize)
        private
        view
        returns (bytes32)
    {
        (bytes32 root, bytes32 manifestHash,,) = IAnchorRegistry(registry).getAnchor(datasetId, treeSize);
        if (root == bytes32(0)) revert NotAnchored(datasetId, treeSize);
        return manifestHash;
    }
}

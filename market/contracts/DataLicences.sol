// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// What a sale and a claim read from DataAsset.
interface IDataAsset {
    function ownerOf(uint256 tokenId) external view returns (address);

    function saleInfo(uint256 tokenId)
        external
        view
        returns (address owner, uint16 nodeShareBps, uint64 treeSize, uint64 nodeRows);

    function checkpointInfo(uint256 tokenId, uint64 treeSize)
        external
        view
        returns (bytes32 contributionRoot, uint64 nodeRows, bytes32 manifestHash, uint64 committedAt);
}

/// The node registry, as far as revenue needs it: who owns node token ``nodeTokenId``
/// (an ERC-721's ``ownerOf``; node token id = uint256(keccak256(bytes(node id)))).
interface INodeOwners {
    function ownerOf(uint256 nodeTokenId) external view returns (address);
}

/// @title DataLicences (version 1)
/// @notice Licences to DataAsset datasets, bought on chain. An asset's owner sets offers (price
///         in an ERC-20 or the native coin, duration, permitted use by terms hash); each offer is
///         an ERC-1155 token id. A purchase mints one unit of it to the buyer and extends the
///         buyer's licence to the asset until ``expiresAt``. Licences are not transferable: the
///         terms bind the licensee. Each sale is split: the asset's node share goes to a pool of
///         the checkpoint the sale licenses, shared by the owners of the nodes whose rows are in
///         it, pro rata to rows, claimed with a Merkle sum-tree proof of the committed
///         contribution table (pull payments); the rest is owed to the asset's owner (withdraw).
/// @dev    Rounding: a node's due is floor(pool * rows / nodeRows), so at most (nodes - 1)
///         smallest units per pool stay unclaimed (dust). The tree's sums bind every claim to
///         the committed total, and claims per pool are capped by the pool all the same.
contract DataLicences is ERC1155, ReentrancyGuard {
    using SafeERC20 for IERC20;

    struct Offer {
        uint256 assetId;
        address seller; // the asset's owner who made it: it lapses when the asset changes hands
        address currency; // an ERC-20, or address(0) for the native coin
        uint256 price; // in the currency's smallest unit
        uint64 duration; // seconds of licence per purchase
        bytes32 termsHash; // SHA-256 of the permitted-use terms
        bool active;
    }

    address public constant NATIVE = address(0);
    uint256 public constant licencesVersion = 1;
    uint64 public constant MAX_DURATION = 100 * 365 days;
    IDataAsset public immutable assets;
    INodeOwners public immutable nodes;

    uint256 public offerCount;
    mapping(uint256 => Offer) public offers; // offer id = ERC-1155 token id
    mapping(address => mapping(uint256 => uint64)) public expiresAt; // holder => asset => expiry
    mapping(address => mapping(address => uint256)) public owed; // account => currency => amount
    mapping(uint256 => mapping(uint64 => mapping(address => uint256))) public nodePool;
    mapping(uint256 => mapping(uint64 => mapping(address => uint256))) public poolClaimed;
    mapping(uint256 => mapping(uint64 => mapping(address => mapping(uint256 => uint256)))) public
        claimed; // asset => checkpoint => currency => node token id => amount claimed

    event OfferCreated(
        uint256 indexed offerId,
        uint256 indexed assetId,
        address currency,
        uint256 price,
        uint64 duration,
        bytes32 termsHash
    );
    event OfferActive(uint256 indexed offerId, bool active);
    event LicencePurchased(
        uint256 indexed assetId,
        uint256 indexed offerId,
        address indexed buyer,
        uint64 expiresAt,
        uint64 treeSize,
        address currency,
        uint256 price,
        uint256 nodeShare
    );
    event Withdrawn(address indexed account, address currency, uint256 amount);
    event Claimed(
        uint256 indexed assetId,
        uint64 indexed treeSize,
        uint256 indexed nodeTokenId,
        address owner,
        address currency,
        uint256 amount
    );

    error NotAssetOwner(address caller, uint256 assetId);
    error BadOffer(string reason);
    error NoSuchOffer(uint256 offerId);
    error OfferInactive(uint256 offerId);
    error OfferLapsed(uint256 offerId);
    error NoCheckpoint(uint256 assetId);
    error WrongPayment(uint256 sent, uint256 price);
    error NothingOwed();
    error TransferFailed();
    error LicenceNotTransferable();
    error NotNodeOwner(address caller, uint256 nodeTokenId);
    error BadProof();
    error NothingToClaim();
    error PoolExceeded();

    constructor(IDataAsset assets_, INodeOwners nodes_) ERC1155("") {
        assets = assets_;
        nodes = nodes_;
    }

    // -- offers ---------------------------------------------------------------------------

    function createOffer(
        uint256 assetId,
        address currency,
        uint256 price,
        uint64 duration,
        bytes32 termsHash
    ) external returns (uint256 offerId) {
        if (assets.ownerOf(assetId) != msg.sender) revert NotAssetOwner(msg.sender, assetId);
        if (price == 0) revert BadOffer("price must be above zero");
        if (duration == 0 || duration > MAX_DURATION) revert BadOffer("duration out of range");
        if (currency != NATIVE && currency.code.length == 0) revert BadOffer("currency has no code");
        offerId = ++offerCount;
        offers[offerId] = Offer(assetId, msg.sender, currency, price, duration, termsHash, true);
        emit OfferCreated(offerId, assetId, currency, price, duration, termsHash);
    }

    function setOfferActive(uint256 offerId, bool active) external {
        Offer storage offer = _offer(offerId);
        if (assets.ownerOf(offer.assetId) != msg.sender) {
            revert NotAssetOwner(msg.sender, offer.assetId);
        }
        offer.active = active;
        emit OfferActive(offerId, active);
    }

    // -- buying -----------------------------------------------------------------------------

    /// @notice Buy one licence under ``offerId`` for the caller; returns its new expiry. The
    ///         native coin: send exactly the price. An ERC-20: approve the price first; exactly
    ///         the price must arrive (fee-on-transfer tokens are refused).
    function buy(uint256 offerId) external payable nonReentrant returns (uint64 expiry) {
        Offer storage offer = _offer(offerId);
        if (!offer.active) revert OfferInactive(offerId);
        (address owner, uint16 bps, uint64 treeSize, uint64 nodeRows) = assets.saleInfo(offer.assetId);
        if (owner != offer.seller) revert OfferLapsed(offerId);
        if (treeSize == 0) revert NoCheckpoint(offer.assetId);
        uint256 price = offer.price;
        _collect(offer.currency, price);
        uint256 nodeShare = nodeRows == 0 ? 0 : Math.mulDiv(price, bps, 10_000);
        owed[owner][offer.currency] += price - nodeShare;
        nodePool[offer.assetId][treeSize][offer.currency] += nodeShare;
        uint64 current = expiresAt[msg.sender][offer.assetId];
        uint64 start = current > block.timestamp ? current : uint64(block.timestamp);
        expiry = start + offer.duration;
        expiresAt[msg.sender][offer.assetId] = expiry;
        emit LicencePurchased(
            offer.assetId, offerId, msg.sender, expiry, treeSize, offer.currency, price, nodeShare
        );
        _mint(msg.sender, offerId, 1, ""); // last: it calls a contract buyer back
    }

    function licenceValid(address holder, uint256 assetId) external view returns (bool) {
        return block.timestamp < expiresAt[holder][assetId];
    }

    // -- getting paid -------------------------------------------------------------------------

    /// @notice The asset owner's share of sales, in ``currency`` (pull payment).
    function withdraw(address currency) external nonReentrant returns (uint256 amount) {
        amount = owed[msg.sender][currency];
        if (amount == 0) revert NothingOwed();
        owed[msg.sender][currency] = 0;
        emit Withdrawn(msg.sender, currency, amount);
        _pay(currency, msg.sender, amount);
    }

    /// @notice A node owner's share of the sales of checkpoint ``treeSize`` in ``currency``:
    ///         ``rows`` of node ``nodeTokenId`` proven in the committed contribution table by a
    ///         Merkle sum-tree path (``siblings`` with their ``siblingSums``; bit i of
    ///         ``leftMask`` set: sibling i is on the left). Claimable again as the pool grows.
    function claim(
        uint256 assetId,
        uint64 treeSize,
        address currency,
        uint256 nodeTokenId,
        uint64 rows,
        bytes32[] calldata siblings,
        uint64[] calldata siblingSums,
        uint256 leftMask
    ) external nonReentrant returns (uint256 amount) {
        if (nodes.ownerOf(nodeTokenId) != msg.sender) revert NotNodeOwner(msg.sender, nodeTokenId);
        (bytes32 root, uint64 nodeRows,,) = assets.checkpointInfo(assetId, treeSize);
        if (root == bytes32(0) || !_proves(root, nodeRows, nodeTokenId, rows, siblings, siblingSums, leftMask)) {
            revert BadProof();
        }
        amount = _settle(assetId, treeSize, currency, nodeTokenId, rows, nodeRows);
    }

    function _settle(
        uint256 assetId,
        uint64 treeSize,
        address currency,
        uint256 nodeTokenId,
        uint256 rows,
        uint64 nodeRows
    ) private returns (uint256 amount) {
        uint256 pool = nodePool[assetId][treeSize][currency];
        uint256 due = Math.mulDiv(pool, rows, nodeRows);
        uint256 already = claimed[assetId][treeSize][currency][nodeTokenId];
        if (due <= already) revert NothingToClaim();
        amount = due - already;
        claimed[assetId][treeSize][currency][nodeTokenId] = due;
        uint256 total = poolClaimed[assetId][treeSize][currency] + amount;
        if (total > pool) revert PoolExceeded();
        poolClaimed[assetId][treeSize][currency] = total;
        emit Claimed(assetId, treeSize, nodeTokenId, msg.sender, currency, amount);
        _pay(currency, msg.sender, amount);
    }

    /// @notice The contribution tree's leaf and node hashes (SHA-256, RFC 9162 style domain
    ///         separation, sums as 8-byte big-endian): leaf = H(0x00 ‖ nodeTokenId ‖ rows),
    ///         node = H(0x01 ‖ left ‖ leftSum ‖ right ‖ rightSum), a node's sum = leftSum + rightSum.
    function _proves(
        bytes32 root,
        uint64 total,
        uint256 nodeTokenId,
        uint64 rows,
        bytes32[] calldata siblings,
        uint64[] calldata siblingSums,
        uint256 leftMask
    ) private pure returns (bool) {
        if (siblings.length != siblingSums.length || siblings.length > 64) return false;
        bytes32 hash = sha256(abi.encodePacked(bytes1(0x00), nodeTokenId, rows));
        uint256 sum = rows;
        for (uint256 i = 0; i < siblings.length; i++) {
            if ((leftMask >> i) & 1 == 1) {
                hash = sha256(abi.encodePacked(bytes1(0x01), siblings[i], siblingSums[i], hash, uint64(sum)));
            } else {
                hash = sha256(abi.encodePacked(bytes1(0x01), hash, uint64(sum), siblings[i], siblingSums[i]));
            }
            sum += siblingSums[i];
            if (sum > type(uint64).max) return false;
        }
        return hash == root && sum == total;
    }

    // -- money in and out ---------------------------------------------------------------------

    function _collect(address currency, uint256 price) private {
        if (currency == NATIVE) {
            if (msg.value != price) revert WrongPayment(msg.value, price);
            return;
        }
        if (msg.value != 0) revert WrongPayment(msg.value, 0);
        IERC20 token = IERC20(currency);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), price);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != price) revert WrongPayment(received, price);
    }

    function _pay(address currency, address to, uint256 amount) private {
        if (currency == NATIVE) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(currency).safeTransfer(to, amount);
        }
    }

    function _offer(uint256 offerId) private view returns (Offer storage offer) {
        offer = offers[offerId];
        if (offer.seller == address(0)) revert NoSuchOffer(offerId);
    }

    /// Licences are minted and never move (the licence terms bind the licensee).
    function _update(address from, address to, uint256[] memory ids, uint256[] memory values)
        internal
        override
    {
        if (from != address(0) && to != address(0)) revert LicenceNotTransferable();
        super._update(from, to, ids, values);
    }
}

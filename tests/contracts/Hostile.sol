// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

/// Attackers and odd tokens for the contract security tests (never deployed outside tests).

/// Re-enters the licence contract from every callback it gets: the native coin's receive()
/// and ERC-1155's onERC1155Received. ``reentered`` records whether a nested call succeeded.
contract Reenterer {
    address public target;
    bytes public again; // the call to repeat from inside a callback
    uint256 public againValue;
    bool public reentered;
    uint256 public attempts;

    /// Call ``target`` with ``data`` (and this call's value); from the first callback that
    /// reaches this contract, call it again with ``repeat`` and ``repeatValue``.
    function call(address target_, bytes calldata data, bytes calldata repeat, uint256 repeatValue)
        external
        payable
    {
        target = target_;
        again = repeat;
        againValue = repeatValue;
        attempts = 0;
        (bool ok, bytes memory reason) = target_.call{value: msg.value - repeatValue}(data);
        if (!ok) {
            assembly {
                revert(add(reason, 32), mload(reason))
            }
        }
    }

    function _reenter() private {
        if (again.length == 0 || attempts > 0) return;
        attempts++;
        (bool ok,) = target.call{value: againValue}(again);
        if (ok) reentered = true;
    }

    receive() external payable {
        _reenter();
    }

    function onERC1155Received(address, address, uint256, uint256, bytes calldata)
        external
        returns (bytes4)
    {
        _reenter();
        return this.onERC1155Received.selector;
    }

    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return this.onERC721Received.selector;
    }
}

/// An ERC-20 that keeps 1% of every transfer: a licence paid with it must be refused.
contract FeeToken is ERC20 {
    constructor() ERC20("Fee Token", "FEE") {
        _mint(msg.sender, 1e30);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0xdead), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}

/// A plain ERC-721 with open minting, standing in for the node registry in unit tests.
contract OpenNodes is ERC721 {
    constructor() ERC721("Nodes", "NODE") {}

    function mint(address to, string calldata nodeId) external returns (uint256 tokenId) {
        tokenId = uint256(keccak256(bytes(nodeId)));
        _mint(to, tokenId);
    }
}

/// Emits events shaped exactly like DataLicences' LicencePurchased, with no sale behind them: a
/// marketplace must read only the DataLicences contract it recorded.
contract ForgedLicences {
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

    function forge(uint256 assetId, address buyer, uint64 expiresAt, uint64 treeSize) external {
        emit LicencePurchased(assetId, 1, buyer, expiresAt, treeSize, address(0), 1, 0);
    }
}

/// An ERC-20 with any name and symbol (a hostile one: markup, control characters, megabytes).
contract NamedToken is ERC20 {
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {
        _mint(msg.sender, 1e30);
    }
}

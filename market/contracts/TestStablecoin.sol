// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestStablecoin
/// @notice A dollar stablecoin for local chains and tests: 6 decimals like USDC, minted by its
///         deployer only. Offers may name any ERC-20; this one exists so that a local chain has
///         one whose decimals differ from the native coin's 18.
contract TestStablecoin is ERC20 {
    address public immutable minter;

    error NotMinter(address caller);

    constructor() ERC20("RDA Test Dollar", "tUSD") {
        minter = msg.sender;
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, amount);
    }
}

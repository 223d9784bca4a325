// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Test tokens for the sweep tests: one whose transfer returns nothing (like USDT on Ethereum), one that
///        reverts every transfer once its owner switches it off. Anyone can mint. Never deploy these to a real network.
contract NoBoolToken {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @notice No return value, as USDT's.
    function transfer(address to, uint256 amount) external {
        require(balanceOf[msg.sender] >= amount, "balance");
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        emit Transfer(msg.sender, to, amount);
    }
}

contract RevertingToken {
    mapping(address => uint256) public balanceOf;
    bool public frozen;
    event Transfer(address indexed from, address indexed to, uint256 value);

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function freeze(bool frozen_) external {
        frozen = frozen_;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        require(!frozen, "frozen");
        require(balanceOf[msg.sender] >= amount, "balance");
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
        emit Transfer(msg.sender, to, amount);
        return true;
    }
}

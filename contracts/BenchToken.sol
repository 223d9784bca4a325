// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title BenchToken
/// @notice An ERC-20 for the chain watcher's benchmark (bench/chain_ingest.py) on the local devnet only: the whole
///         supply goes to the deployer, and `batchTransfer` moves `amount` to each of many recipients in one
///         transaction, emitting one standard Transfer event per recipient FROM THIS CONTRACT (the scanner filters
///         logs by token contract). Balances are real. Never deploy this to a real network.
contract BenchToken {
    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;

    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    error InsufficientBalance();
    error ZeroAddress();

    constructor(string memory name_, string memory symbol_, uint8 decimals_, uint256 supply) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        totalSupply = supply;
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        if (to == address(0)) revert ZeroAddress();
        uint256 fromBalance = balanceOf[msg.sender];
        if (fromBalance < amount) revert InsufficientBalance();
        unchecked {
            balanceOf[msg.sender] = fromBalance - amount;
            balanceOf[to] += amount; // cannot overflow: bounded by totalSupply
        }
        emit Transfer(msg.sender, to, amount);
        return true;
    }

    /// @notice Sends `amount` to each address of `to` (one Transfer event each); all or nothing.
    function batchTransfer(address[] calldata to, uint256 amount) external returns (bool) {
        uint256 total = amount * to.length;
        uint256 fromBalance = balanceOf[msg.sender];
        if (fromBalance < total) revert InsufficientBalance();
        unchecked {
            balanceOf[msg.sender] = fromBalance - total;
        }
        for (uint256 i = 0; i < to.length; i++) {
            address recipient = to[i];
            if (recipient == address(0)) revert ZeroAddress();
            unchecked {
                balanceOf[recipient] += amount; // cannot overflow: bounded by totalSupply
            }
            emit Transfer(msg.sender, recipient, amount);
        }
        return true;
    }
}

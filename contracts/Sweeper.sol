// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Sweeper
/// @notice The EIP-7702 delegate of the gateway's deposit addresses on one network, and the hot wallet's batch entry
///         point (docs/money-out.md, "Sweeps"). One deployment per network, with that network's hot wallet fixed in
///         the bytecode (immutable): a delegated deposit EOA runs this code with its own storage and balance, and
///         the immutables tell it who may sweep it and where the tokens go.
///
///         - `sweepMany(token, deposits, amounts)` runs on this contract itself, called by the hot wallet only: it
///           calls `sweep` on each delegated deposit address. One deposit whose sweep fails (a token that reverts,
///           an address whose authorization was not applied) is skipped with a `SweepSkipped` event; the rest go on.
///         - `sweep(token, amount)` runs in a delegated deposit EOA: callable only by this contract (from
///           `sweepMany`) or the hot wallet, it moves exactly `amount` of `token` to the hot wallet, never
///           anywhere else. Tokens that return no bool (USDT on Ethereum) are accepted; a `false` or a revert
///           fails the sweep of that deposit.
///         A delegated address is useless to anyone else: no other function moves anything, and there is no
///         parameter naming a destination.
contract Sweeper {
    /// @notice The network's hot wallet: the only caller of `sweepMany`, the only destination of tokens.
    address public immutable hotWallet;
    /// @dev This deployment's own address (an immutable keeps it in the code a delegated EOA runs).
    address private immutable self;

    bytes4 private constant TRANSFER = 0xa9059cbb; // transfer(address,uint256)

    event SweepSkipped(address indexed deposit);

    error NotAuthorized();
    error TransferFailed();
    error LengthMismatch();

    constructor(address hotWallet_) {
        hotWallet = hotWallet_;
        self = address(this);
    }

    /// @notice Runs in a delegated deposit address: moves `amount` of `token` to the hot wallet. Returns its
    ///         selector, so `sweepMany` can tell a real sweep from a call to an address without this code.
    function sweep(address token, uint256 amount) external returns (bytes4) {
        if (msg.sender != self && msg.sender != hotWallet) revert NotAuthorized();
        (bool ok, bytes memory ret) = token.call(abi.encodeWithSelector(TRANSFER, hotWallet, amount));
        if (!ok) revert TransferFailed();
        if (ret.length == 0) {
            if (token.code.length == 0) revert TransferFailed(); // no contract there: nothing moved
        } else if (ret.length != 32 || abi.decode(ret, (uint256)) != 1) {
            revert TransferFailed(); // returned false (or something that is not a bool)
        }
        return this.sweep.selector;
    }

    /// @notice The hot wallet's batch: sweeps `amounts[i]` of `token` from each delegated `deposits[i]`.
    function sweepMany(address token, address[] calldata deposits, uint256[] calldata amounts) external {
        if (msg.sender != hotWallet || address(this) != self) revert NotAuthorized();
        if (deposits.length != amounts.length) revert LengthMismatch();
        bytes4 selector = this.sweep.selector;
        for (uint256 i = 0; i < deposits.length; ++i) {
            address deposit = deposits[i];
            (bool ok, bytes memory ret) = deposit.call(abi.encodeWithSelector(selector, token, amounts[i]));
            if (!ok || ret.length != 32 || bytes4(bytes32(ret)) != selector) emit SweepSkipped(deposit);
        }
    }

    /// @notice Native coin sent to a delegated deposit address is accepted (as it was before the delegation).
    receive() external payable {}
}

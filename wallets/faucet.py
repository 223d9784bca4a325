"""Test mode only: really send tokens on a test chain from a faucet account (the `simulate_crypto_deposit` helper).

The faucet key comes from `GATEWAY_FAUCET_KEY_<NETWORK_CODE>`; on the local devnet it defaults to anvil's last
well-known development account. Built and signed with web3.py / eth-account, then broadcast raw."""
import os

from eth_account import Account
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from gateway.errors import DomainError

from .chain.rpc import RpcClient, RpcError, RpcUnavailable
from .models import Network, Token

TRANSFER_SELECTOR = function_signature_to_4byte_selector("transfer(address,uint256)")


def faucet_key(network: Network) -> str | None:
    key = os.environ.get("GATEWAY_FAUCET_KEY_" + network.code.upper().replace("-", "_"))
    if key:
        return key
    if network.code == "devnet":
        from .devchain import DEV_PRIVATE_KEYS

        return DEV_PRIVATE_KEYS[-1]
    return None


def faucet_send(*, network: Network, token: Token | None, to_address: str, amount_base_units: int) -> str:
    """Sign and broadcast one transfer; returns the transaction hash."""
    if network.livemode:
        raise DomainError(code="test_helpers_live_mode", message="Test helpers only work in test mode.")
    key = faucet_key(network)
    if key is None:
        raise DomainError(
            code="faucet_not_configured", param="network",
            message=f"No faucet account is configured for {network.code}: set GATEWAY_FAUCET_KEY_"
                    f"{network.code.upper().replace('-', '_')}.",
        )
    account = Account.from_key(key)
    client = RpcClient.for_network(network)
    try:
        nonce = int(client.call("eth_getTransactionCount", [account.address, "pending"]), 16)
        gas_price = int(client.call("eth_gasPrice", []), 16)
        if token is None:
            tx = {"to": to_checksum_address(to_address), "value": amount_base_units, "data": b"", "gas": 60_000}
        else:
            data = TRANSFER_SELECTOR + bytes.fromhex(to_address[2:].rjust(64, "0")) + amount_base_units.to_bytes(32, "big")
            tx = {"to": to_checksum_address(token.contract_address), "value": 0, "data": data, "gas": 120_000}
        tx.update(nonce=nonce, gasPrice=gas_price * 2, chainId=network.chain_id)
        signed = account.sign_transaction(tx)
        return client.call("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex().removeprefix("0x")])
    except RpcError as exc:
        raise DomainError(code="faucet_send_failed", message=f"The test chain refused the transfer: {exc.message}")
    except RpcUnavailable:
        raise DomainError(code="chain_unavailable", message="The test chain is not reachable right now.",
                          status_code=503)

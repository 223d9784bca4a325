"""The networks and tokens the gateway knows out of the box. Data, not code: the migration copies them into the
database, where staff edit them in Django admin; `manage.py devchain` adds the local devnet."""

MAINNETS = [
    # code, api_name, display, chain_id, native, block_ms, finality, confirmations, explorer, tokens
    ("bsc", "bsc", "BNB Smart Chain", 56, "bnb", 450, "finalized", 0, "https://bscscan.com", [
        ("usdt", "0x55d398326f99059ff775485246999027b3197955", 18),
        ("usdc", "0x8ac76a51cc950d9822d68b83fe1ad97b32cd580d", 18),
    ]),
    ("ethereum", "ethereum", "Ethereum", 1, "eth", 12000, "finalized", 0, "https://etherscan.io", [
        ("usdt", "0xdac17f958d2ee523a2206206994597c13d831ec7", 6),
        ("usdc", "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", 6),
    ]),
    ("polygon", "polygon", "Polygon PoS", 137, "pol", 2000, "finalized", 0, "https://polygonscan.com", [
        ("usdt", "0xc2132d05d31c914a87c6611c10748aeb04b58e8f", 6),
        ("usdc", "0x3c499c542cef5e3811e1192ce70d8cc03d5c3359", 6),
    ]),
    ("arbitrum", "arbitrum", "Arbitrum One", 42161, "eth", 250, "finalized", 0, "https://arbiscan.io", [
        ("usdt", "0xfd086bc7cd5c481dcc9c85ebe478a1c0b69fcbb9", 6),
        ("usdc", "0xaf88d065e77c8cc2239327c5edb3a432268e5831", 6),
    ]),
    ("optimism", "optimism", "OP Mainnet", 10, "eth", 2000, "finalized", 0, "https://optimistic.etherscan.io", [
        ("usdt", "0x94b008aa00579c1307b0ef2c499ad98a8ce58e58", 6),
        ("usdc", "0x0b2c639c533813f4aa9d7837caf62653d097ff85", 6),
    ]),
    ("base", "base", "Base", 8453, "eth", 2000, "finalized", 0, "https://basescan.org", [
        ("usdt", "0xfde4c96c8593536e31f229ea8f37b2ada2699bb2", 6),
        ("usdc", "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913", 6),
    ]),
]

TESTNETS = [
    ("bsc-testnet", "bsc", "BNB Smart Chain Testnet", 97, "bnb", 450, "finalized", 0, "https://testnet.bscscan.com", [
        ("usdt", "0x337610d27c682e347c9cd60bd4b3b107c9d34ddd", 18),
        ("usdc", "0x64544969ed7ebf5f083679233325356ebe738930", 18),
    ]),
    ("sepolia", "ethereum", "Ethereum Sepolia", 11155111, "eth", 12000, "finalized", 0, "https://sepolia.etherscan.io", [
        ("usdc", "0x1c7d4b196cb0c7b01d743fbc6116a902379c7238", 6),
    ]),
    ("polygon-amoy", "polygon", "Polygon Amoy", 80002, "pol", 2000, "finalized", 0, "https://amoy.polygonscan.com", [
        ("usdc", "0x41e94eb019c0762f9bfcf9fb1e58725bfb0e7582", 6),
    ]),
    ("arbitrum-sepolia", "arbitrum", "Arbitrum Sepolia", 421614, "eth", 250, "finalized", 0,
     "https://sepolia.arbiscan.io", [
        ("usdc", "0x75faf114eafb1bdbe2f0316df893fd58ce46aa4d", 6),
    ]),
    ("optimism-sepolia", "optimism", "OP Sepolia", 11155420, "eth", 2000, "finalized", 0,
     "https://sepolia-optimism.etherscan.io", [
        ("usdc", "0x5fd84259d66cd46123540766be93dfe6d43130d7", 6),
    ]),
    ("base-sepolia", "base", "Base Sepolia", 84532, "eth", 2000, "finalized", 0, "https://sepolia.basescan.org", [
        ("usdc", "0x036cbd53842c5426634e7929541ec2318f3dcf7e", 6),
    ]),
]

# RPC URLs anyone may use (no API key), that the checkout hands to a customer's browser wallet to add the chain.
PUBLIC_RPC_URLS = {
    "bsc": "https://bsc-dataseed.bnbchain.org",
    "ethereum": "https://ethereum-rpc.publicnode.com",
    "polygon": "https://polygon-rpc.com",
    "arbitrum": "https://arb1.arbitrum.io/rpc",
    "optimism": "https://mainnet.optimism.io",
    "base": "https://mainnet.base.org",
    "bsc-testnet": "https://data-seed-prebsc-1-s1.bnbchain.org:8545",
    "sepolia": "https://ethereum-sepolia-rpc.publicnode.com",
    "polygon-amoy": "https://rpc-amoy.polygon.technology",
    "arbitrum-sepolia": "https://sepolia-rollup.arbitrum.io/rpc",
    "optimism-sepolia": "https://sepolia.optimism.io",
    "base-sepolia": "https://sepolia.base.org",
}

API_NETWORK_NAMES = ("bsc", "ethereum", "polygon", "arbitrum", "optimism", "base")


def rpc_env_name(code: str) -> str:
    return "GATEWAY_RPC_" + code.upper().replace("-", "_")


def seed_networks(Network, Token) -> None:
    """Create the known networks and tokens that are missing; never overwrites staff edits. Takes the model
    classes so that the data migration can pass its historical models."""
    has_public_rpc = any(f.name == "public_rpc_url" for f in Network._meta.get_fields())  # 0003 predates it
    for livemode, rows in ((True, MAINNETS), (False, TESTNETS)):
        for code, api_name, display, chain_id, native, block_ms, finality, confs, explorer, tokens in rows:
            network, _ = Network.objects.get_or_create(
                code=code,
                defaults=dict(
                    api_name=api_name, display_name=display, chain_id=chain_id, livemode=livemode,
                    native_currency=native, block_time_ms=block_ms, finality=finality, confirmations=confs or 12,
                    explorer_url=explorer, rpc_env=rpc_env_name(code),
                    is_active=not Network.objects.filter(api_name=api_name, livemode=livemode, is_active=True).exists(),
                    **({"public_rpc_url": PUBLIC_RPC_URLS.get(code, "")} if has_public_rpc else {}),
                ),
            )
            for currency, address, decimals in tokens:
                Token.objects.get_or_create(
                    network=network, currency=currency,
                    defaults=dict(contract_address=address.lower(), decimals=decimals),
                )


# --- Reads of the configured networks, cached per process for a few seconds (they change rarely, and are read on
# every payment creation). Staff edits in admin take effect within GATEWAY_NETWORK_CACHE_SECONDS.
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from django.conf import settings  # noqa: E402


@dataclass(frozen=True)
class ActiveNetwork:
    network: object  # wallets.models.Network
    tokens: tuple  # wallets.models.Token, active ones, ordered by currency


_cache: dict[bool, tuple[float, dict[str, ActiveNetwork]]] = {}


def is_watched(network) -> bool:
    """Whether the chain watcher watches `network`: it has an RPC URL (GATEWAY_RPC_<CODE>, or the devnet's), the
    one thing the watcher needs (it skips a network without; docs/operations.md). Not the scanner's cursor: a fresh
    deployment has none until the first scan, and a lagging scanner is monitoring's business (readyz, lag alerts)."""
    if not getattr(settings, "GATEWAY_NETWORKS_REQUIRE_RPC", True):
        return True
    from .chain.rpc import rpc_urls

    return bool(rpc_urls(code=network.code, rpc_env=network.rpc_env))


def active_networks(*, livemode: bool) -> dict[str, ActiveNetwork]:
    """API network name -> the active and watched (`is_watched`) network of that mode with its active tokens: the
    networks offered to new payments and on the checkout."""
    ttl = getattr(settings, "GATEWAY_NETWORK_CACHE_SECONDS", 10)
    hit = _cache.get(livemode)
    now = time.monotonic()
    if hit and now - hit[0] < ttl:
        return hit[1]
    from .models import Network, Token

    networks = {n.id: n for n in Network.objects.filter(livemode=livemode, is_active=True) if is_watched(n)}
    tokens: dict[int, list] = {nid: [] for nid in networks}
    for token in Token.objects.filter(network_id__in=networks, is_active=True).order_by("currency"):
        tokens[token.network_id].append(token)
        token.network = networks[token.network_id]
    result = {
        n.api_name: ActiveNetwork(network=n, tokens=tuple(tokens[n.id]))
        for n in sorted(networks.values(), key=lambda n: API_NETWORK_NAMES.index(n.api_name)
                        if n.api_name in API_NETWORK_NAMES else 99)
        if tokens[n.id]
    }
    _cache[livemode] = (now, result)
    return result


def clear_network_cache() -> None:
    _cache.clear()

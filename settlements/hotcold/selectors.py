"""Reads of hot and cold: the hot wallets' ledger balances against their floors and ceilings."""
from dataclasses import asdict, dataclass

from django.db.models import Sum

from wallets.models import Network

from ..models import AccountKind
from .models import ColdTransfer, HotColdSetting, HotWalletAlert
from .services import hot_wallet_of, wallet_balance


@dataclass
class HotColdPosition:
    network: str
    asset: str  # the token's currency, or "native"
    hot_address: str
    hot_balance: int  # the ledger's hot_wallet balance (base units)
    floor: int
    ceiling: int | None  # None for the native coin (never sent to cold)
    cold_address: str = ""
    cold_balance: int = 0
    in_flight: int = 0  # sent to cold, not final yet
    alert_open: bool = False

    @property
    def below_floor(self) -> bool:
        return self.hot_balance < self.floor

    @property
    def above_ceiling(self) -> bool:
        return self.ceiling is not None and self.hot_balance > self.ceiling

    def as_json(self) -> dict:
        return {key: str(value) if isinstance(value, int) and not isinstance(value, bool) else value
                for key, value in asdict(self).items()}


def hot_cold_positions(*, network: Network | None = None) -> list[HotColdPosition]:
    """One position per token with a setting, and one for the native coin of each such network with a hot wallet."""
    rows = HotColdSetting.objects.select_related("token__network").order_by("token__network__code", "token__currency")
    if network is not None:
        rows = rows.filter(token__network=network)
    by_network: dict[Network, list[HotColdSetting]] = {}
    for row in rows:
        by_network.setdefault(row.token.network, []).append(row)
    positions = []
    for net, settings_rows in by_network.items():
        hot = hot_wallet_of(net)
        if hot is None:
            continue
        open_alerts = set(HotWalletAlert.objects.filter(network=net, resolved_at__isnull=True)
                          .values_list("token_id", flat=True))
        for row in settings_rows:
            token = row.token
            in_flight = ColdTransfer.objects.filter(token=token, status=ColdTransfer.Status.SENT).aggregate(
                total=Sum("amount_base_units"))["total"] or 0
            positions.append(HotColdPosition(
                network=net.code, asset=token.currency, hot_address=hot.address,
                hot_balance=wallet_balance(kind=AccountKind.HOT_WALLET, network=net, token_id=token.id,
                                           address=hot.address),
                floor=row.hot_floor_base_units, ceiling=row.hot_ceiling_base_units, cold_address=row.cold_address,
                cold_balance=wallet_balance(kind=AccountKind.COLD_WALLET, network=net, token_id=token.id,
                                            address=row.cold_address),
                in_flight=int(in_flight), alert_open=token.id in open_alerts))
        positions.append(HotColdPosition(
            network=net.code, asset="native", hot_address=hot.address,
            hot_balance=wallet_balance(kind=AccountKind.HOT_WALLET, network=net, token_id=None, address=hot.address),
            floor=max(row.native_floor_base_units for row in settings_rows), ceiling=None,
            alert_open=None in open_alerts))
    return positions

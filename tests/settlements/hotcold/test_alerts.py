"""Below its floor (a token, or the native coin for gas), the hot wallet raises ONE alert (log, admin row, email to
staff), resolved when the balance is back at or above the floor."""
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from settlements.hotcold.models import HotWalletAlert
from settlements.hotcold.services import hot_cold_run
from tests.wallets.outgoing.conftest import ETH

from .conftest import ONE, record_topup, mint


@pytest.fixture
def staff(db):
    User = get_user_model()
    User.objects.create_user(username="ops", email="ops@example.com", password="x", is_staff=True)
    User.objects.create_user(username="merchant-like", email="shop@example.com", password="x")  # not staff
    return "ops@example.com"


def open_alerts() -> set:
    return set(HotWalletAlert.objects.filter(resolved_at__isnull=True).values_list("token__currency", flat=True))


def test_floor_alerts_are_raised_once_and_resolved(chain, network, client, hot, usdt, setting, staff, caplog,
                                                   django_capture_on_commit_callbacks):
    # Given a hot wallet with no USDT (floor 10) and 10 ETH, under a native floor of 50 ETH
    setting.native_floor_base_units = 50 * ETH
    setting.save()

    # When the beat task runs twice
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        first = hot_cold_run()
    with django_capture_on_commit_callbacks(execute=True):
        second = hot_cold_run()

    # Then one alert each, one email each to staff only, logged; nothing again on the second run
    assert first.alerts == {network.code: ["raised usdt", "raised native"]} and second.alerts == {}
    assert open_alerts() == {"usdt", None}
    assert HotWalletAlert.objects.count() == 2
    assert len(mail.outbox) == 2 and all(m.to == [staff] for m in mail.outbox)
    assert "USDT below its floor" in mail.outbox[0].subject and "manage.py ledger topup" in mail.outbox[0].body
    assert "below its floor" in caplog.text

    # When 20 USDT arrive and are recorded, then the USDT alert is resolved (the native one stays)
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=20 * ONE)
    record_topup(network, client, usdt, 20 * ONE, tx_hash)
    with django_capture_on_commit_callbacks(execute=True):
        third = hot_cold_run()
    assert third.alerts == {network.code: ["resolved usdt"]}
    assert open_alerts() == {None}
    resolved = HotWalletAlert.objects.get(token=usdt)
    assert resolved.resolved_balance_base_units == 20 * ONE and len(mail.outbox) == 2

    # And a later fall below the floor is a new alert
    setting.hot_floor_base_units = 30 * ONE
    setting.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert hot_cold_run().alerts == {network.code: ["raised usdt"]}
    assert HotWalletAlert.objects.filter(token=usdt).count() == 2 and len(mail.outbox) == 3


def test_an_inactive_setting_raises_nothing(network, hot, setting, staff):
    setting.is_active = False
    setting.save()
    assert hot_cold_run().alerts == {} and not HotWalletAlert.objects.exists()

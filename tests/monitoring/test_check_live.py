"""`manage.py check_live`: each check passing on a deployment made ready, and failing (or warning) with what to do
when its part is missing. The "live" chain is a bare anvil of another chain id than the devnet's (tests/chain.py
`running_other_chain`), registered as an active live-mode network with its RPC URL in the environment, a hot wallet
(one of anvil's funded accounts) and a cold address; the devnet's anvil plays the node of the wrong chain."""
import base64
import json
import socket
import threading

import pytest
from django.core.management import call_command
from drf_spectacular.settings import patched_settings
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from audit.services import ObjectRef, audit_record
from merchants.models import SecretsKey
from merchants.secrets import secret_seal, secrets_cache_clear
from monitoring import live
from settlements.hotcold.models import HotColdSetting
from tests.chain import OTHER_CHAIN_ID, anvil_chain, running_other_chain  # noqa: F401 (fixture)
from tests.processes import wait_until
from wallets.devchain import rpc
from wallets.models import ChainCursor, MasterSeed, Network, Token
from wallets.outgoing.models import SendingAddress

RPC_ENV = "GATEWAY_RPC_LIVENET"
ETHER = 10**18
COLD = "0x" + "c0" * 20


@pytest.fixture(scope="module")
def live_chain_url():
    with running_other_chain() as url:
        yield url


class FakeSmtp:
    """An SMTP server on 127.0.0.1 that greets, says 250 to everything and 221 to QUIT: enough for a connection
    check (no message is ever sent by check_live)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # so that the accept loop sees close()
        self.closed = threading.Event()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            try:
                with conn, conn.makefile("rb") as lines:
                    conn.sendall(b"220 fake ESMTP\r\n")
                    for line in lines:
                        conn.sendall(b"221 bye\r\n" if line.upper().startswith(b"QUIT") else b"250 ok\r\n")
                        if line.upper().startswith(b"QUIT"):
                            break
            except OSError:  # a client that went away or stayed silent
                continue

    def close(self):
        self.closed.set()
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def smtp():
    server = FakeSmtp()
    yield server
    server.close()


@pytest.fixture
def production(settings, smtp):
    """The settings of a production deployment (as gateway/settings/production.py makes them), in this process."""
    settings.DEBUG = False
    settings.SECRET_KEY = "Xk2#9qZ!" * 8
    settings.ALLOWED_HOSTS = ["pay.example"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    settings.DEFAULT_FROM_EMAIL = "payments@pay.example"
    # production.py turns drf-spectacular's deploy check off; its settings object was read at import, so patch it
    with patched_settings({"ENABLE_DJANGO_DEPLOY_CHECK": False}):
        yield settings


@pytest.fixture
def livenet(db, wallet, live_chain_url, monkeypatch):
    """An active live network on the live anvil, scanned to its head, with a funded hot wallet, a gas floor and a
    cold address for its one token; every other live network off."""
    Network.objects.filter(livemode=True).update(is_active=False)
    monkeypatch.setenv(RPC_ENV, live_chain_url)
    network = Network.objects.create(code="livenet", api_name="livenet", display_name="Live (anvil)",
                                     chain_id=OTHER_CHAIN_ID, livemode=True, rpc_env=RPC_ENV, block_time_ms=2000,
                                     finality=Network.Finality.CONFIRMATIONS, confirmations=2)
    token = Token.objects.create(network=network, currency="usdt", contract_address="0x" + "11" * 20, decimals=6)
    head = int(rpc(live_chain_url, "eth_blockNumber"), 16)
    ChainCursor.objects.create(network=network, block_number=head, head_number=head)
    hot = rpc(live_chain_url, "eth_accounts")[3].lower()  # anvil funds it with 10,000 of the native coin
    nonce = int(rpc(live_chain_url, "eth_getTransactionCount", [hot, "latest"]), 16)  # the module's chain moves on
    SendingAddress.objects.create(network=network, address=hot, key_ref=f"m/44'/60'/1'/0/{OTHER_CHAIN_ID}",
                                  next_nonce=nonce)
    HotColdSetting.objects.create(token=token, hot_floor_base_units=0, hot_ceiling_base_units=10**12,
                                  native_floor_base_units=ETHER, cold_address=COLD)
    return network


def by_name(rows) -> dict[str, live.LiveCheck]:
    return {row.name: row for row in rows}


def check_live(*args) -> tuple[int, dict]:
    """Run the command; (exit code, its JSON)."""
    from io import StringIO

    out = StringIO()
    try:
        call_command("check_live", "--json", *args, stdout=out)
        code = 0
    except CommandError:
        code = 1
    return code, json.loads(out.getvalue())


def test_a_ready_deployment_passes_every_check(production, livenet):
    secret_seal("x", slot=b"test:1")  # a stored data key, opened by the secrets KEK
    audit_record(actor="command:test", action="thing.touch", obj=ObjectRef("test.thing", "1"))

    code, body = check_live("--skip", "signer")

    statuses = {row["name"]: row["status"] for row in body["checks"]}
    assert code == 0 and body["ok"] is True, [row for row in body["checks"] if row["status"] != "PASS"]
    assert statuses == {
        "secrets_kek": "PASS", "seed_kek": "PASS", "debug": "PASS", "check_deploy": "PASS", "allowed_hosts": "PASS",
        "webhook_ssrf": "PASS", "email": "PASS", "chain_ids": "PASS", "rpc:livenet": "PASS",
        "scanner:livenet": "PASS", "hot_wallet:livenet": "PASS", "cold_address:livenet": "PASS", "audit": "PASS",
    }, body


def test_the_text_output_has_one_line_per_check_and_exits_1_on_a_failure(production, livenet, settings, capsys):
    settings.DEBUG = True
    with pytest.raises(CommandError, match="debug"):
        call_command("check_live", "--skip", "signer", "--skip", "check_deploy")
    out = capsys.readouterr().out.splitlines()
    assert "FAIL  debug: DEBUG is on -> use DJANGO_SETTINGS_MODULE=gateway.settings.production" in out
    assert any(line.startswith("PASS  rpc:livenet: 1 URL(s) answer chain id") for line in out)


def test_settings_checks_fail_with_what_to_do(production, settings):
    settings.DEBUG = True
    settings.SECURE_SSL_REDIRECT = False
    settings.ALLOWED_HOSTS = ["*"]
    settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK = True
    rows = by_name([*live.check_debug(), *live.check_deploy(), *live.check_allowed_hosts(),
                    *live.check_webhook_ssrf()])
    assert {name: row.status for name, row in rows.items()} == {
        "debug": "FAIL", "check_deploy": "FAIL", "allowed_hosts": "FAIL", "webhook_ssrf": "FAIL"}
    assert "security.W008" in rows["check_deploy"].detail and all(row.todo for row in rows.values())
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    assert live.check_allowed_hosts()[0].status == "WARN"


def test_email_fails_when_it_would_send_nothing_or_cannot_connect(production, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert live.check_email()[0].status == "FAIL"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "gateway@localhost"
    assert "DEFAULT_FROM_EMAIL" in live.check_email()[0].detail
    settings.DEFAULT_FROM_EMAIL = "payments@pay.example"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = closed.getsockname()[1]  # bound, not listening: refused
        [row] = live.check_email()
    assert row.status == "FAIL" and "refused" in row.detail


def test_the_secrets_kek_must_be_set_distinct_and_open_the_stored_keys(db, settings):
    secret_seal("x", slot=b"test:1")
    assert live.check_secrets_kek()[0].status == "PASS"
    settings.GATEWAY_SECRETS_KEK = settings.GATEWAY_KEK
    assert "equals GATEWAY_KEK" in live.check_secrets_kek()[0].detail
    settings.GATEWAY_SECRETS_KEK = base64.b64encode(b"o" * 32).decode()  # another KEK than the one that wrapped it
    secrets_cache_clear()
    [row] = live.check_secrets_kek()
    assert row.status == "FAIL" and SecretsKey.objects.get().id in row.detail
    settings.GATEWAY_SECRETS_KEK = ""
    assert live.check_secrets_kek()[0].status == "FAIL"
    secrets_cache_clear()


def test_the_seed_kek_opens_the_seed_where_it_is_set(db, settings):
    assert live.check_seed_kek()[0].status == "FAIL"  # no seed yet
    from wallets.services import wallet_init

    wallet_init()
    assert live.check_seed_kek()[0].status == "PASS"
    settings.GATEWAY_KEK = ""  # a web or worker host
    assert live.check_seed_kek()[0].status == "WARN"
    settings.GATEWAY_KEK = base64.b64encode(b"w" * 32).decode()  # the wrong KEK
    [row] = live.check_seed_kek()
    assert row.status == "FAIL" and MasterSeed.objects.get().kek_fingerprint in row.detail


def test_an_rpc_url_of_another_chain_fails(livenet, anvil_chain, monkeypatch, live_chain_url):  # noqa: F811
    # Given the network's URLs: its own node and the devnet's anvil (chain 31337, not the network's)
    monkeypatch.setenv(RPC_ENV, f"{live_chain_url},{anvil_chain.rpc_url}")
    [rpc_row] = [row for row in live.check_networks() if row.name == "rpc:livenet"]
    assert rpc_row.status == "FAIL" and "wrong_chain" in rpc_row.detail and "1 of 2" in rpc_row.detail
    # and with only the wrong node, the scanner's line is left out (the RPC line says why)
    monkeypatch.setenv(RPC_ENV, anvil_chain.rpc_url)
    rows = by_name(live.check_networks())
    assert rows["rpc:livenet"].status == "FAIL" and "scanner:livenet" not in rows


def test_a_network_without_rpc_url_or_with_a_lagging_scanner_fails(livenet, monkeypatch, live_chain_url):
    # Given a scanner 100 blocks (200 s of this chain) behind the head
    rpc(live_chain_url, "anvil_mine", [hex(100)])
    head = int(rpc(live_chain_url, "eth_blockNumber"), 16)
    ChainCursor.objects.filter(network=livenet).update(block_number=head - 100)
    rows = by_name(live.check_networks())
    assert rows["rpc:livenet"].status == "PASS"
    assert rows["scanner:livenet"].status == "FAIL" and "lagging" in rows["scanner:livenet"].detail
    monkeypatch.delenv(RPC_ENV)
    rows = by_name(live.check_networks())
    assert rows["rpc:livenet"].status == "FAIL" and RPC_ENV in rows["rpc:livenet"].todo


def test_no_live_network_is_a_warning(db):
    Network.objects.filter(livemode=True).update(is_active=False)
    assert [row.status for row in live.check_networks()] == ["WARN"]


def test_hot_wallets_must_hold_gas_above_their_floor_and_tokens_need_a_cold_address(livenet, live_chain_url):
    assert {row.name: row.status for row in live.check_wallets()} == {
        "hot_wallet:livenet": "PASS", "cold_address:livenet": "PASS"}
    # an empty hot wallet
    hot = SendingAddress.objects.get(network=livenet)
    rpc(live_chain_url, "anvil_setBalance", [hot.address, hex(ETHER // 2)])
    try:
        row = by_name(live.check_wallets())["hot_wallet:livenet"]
        assert row.status == "FAIL" and f"floor {ETHER}" in row.detail and hot.address in row.todo
        # no floor set: a warning
        HotColdSetting.objects.update(native_floor_base_units=0)
        assert by_name(live.check_wallets())["hot_wallet:livenet"].status == "WARN"
    finally:
        rpc(live_chain_url, "anvil_setBalance", [hot.address, hex(10_000 * ETHER)])
    # a hot wallet that sent a transaction the database never numbered (a restore from an older backup)
    HotColdSetting.objects.update(native_floor_base_units=ETHER)
    tx_hash = rpc(live_chain_url, "eth_sendTransaction", [{"from": hot.address, "to": COLD, "value": "0x1"}])
    wait_until(lambda: rpc(live_chain_url, "eth_getTransactionReceipt", [tx_hash]), timeout=30, what="the send")
    row = by_name(live.check_wallets())["hot_wallet:livenet"]
    assert row.status == "FAIL" and f"the database numbered {hot.next_nonce}:" in row.detail
    SendingAddress.objects.filter(pk=hot.pk).update(next_nonce=hot.next_nonce + 1)
    assert by_name(live.check_wallets())["hot_wallet:livenet"].status == "PASS"
    # a token without a cold address, and no hot wallet
    Token.objects.create(network=livenet, currency="usdc", contract_address="0x" + "22" * 20, decimals=6)
    hot.delete()
    rows = by_name(live.check_wallets())
    assert rows["hot_wallet:livenet"].status == "FAIL" and "manage.py hot_wallet" in rows["hot_wallet:livenet"].todo
    assert rows["cold_address:livenet"].status == "FAIL" and "usdc" in rows["cold_address:livenet"].detail


def test_a_test_network_cannot_take_a_live_chains_id_and_check_live_names_one_that_did(livenet):
    # The constraint refuses a test network with the live network's chain id
    with pytest.raises(IntegrityError), transaction.atomic():
        Network.objects.create(code="fake-test", api_name="fake", display_name="Fake", chain_id=OTHER_CHAIN_ID,
                               livemode=False)
    # A database from before the constraint (dropped in this test's transaction, rolled back with it)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE wallets_network DROP CONSTRAINT network_unique_chain_id")
    Network.objects.create(code="fake-test", api_name="fake", display_name="Fake", chain_id=OTHER_CHAIN_ID,
                           livemode=False)
    [row] = live.check_chain_ids()
    assert row.status == "FAIL" and row.name == f"chain_ids:{OTHER_CHAIN_ID}"
    assert "fake-test (test), livenet (live)" in row.detail and "sign with the live keys" in row.detail


def test_without_a_signer_worker_the_signer_check_fails():
    # No worker listens on this run's broker (its own Redis database)
    [row] = live.check_signer(timeout=0.5)
    assert row.status == "FAIL" and "-Q signer" in row.todo


def test_a_tampered_audit_record_fails_the_check(db):
    for i in range(3):
        audit_record(actor="command:test", action="thing.touch", obj=ObjectRef("test.thing", str(i)))
    assert live.check_audit()[0].status == "PASS"
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER audit_record_append_only")
        cursor.execute("UPDATE audit_auditrecord SET reason = 'x' WHERE seq = 2")
        cursor.execute("ALTER TABLE audit_auditrecord ENABLE TRIGGER audit_record_append_only")
    [row] = live.check_audit()
    assert row.status == "FAIL" and "#2" in row.detail
    assert live.check_audit(last=1)[0].status == "PASS"  # outside the window checked


def test_a_dead_broker_fails_the_signer_check_at_once(settings):
    from gateway.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:111/0"  # nothing listens there
    try:
        [row] = live.check_signer(timeout=0.5)
    finally:
        app.conf.broker_url = old
    assert row.status == "FAIL" and "broker unreachable" in row.detail


def test_a_check_that_raises_is_a_failure_and_the_others_still_run(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setitem(live.CHECKS, "debug", broken)
    rows = by_name(live.live_checks(skip=frozenset(set(live.CHECKS) - {"debug", "webhook_ssrf"})))
    assert rows["debug"].status == "FAIL" and "RuntimeError" in rows["debug"].detail
    assert "webhook_ssrf" in rows

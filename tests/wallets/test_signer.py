"""The signer boundary: keys only in the signer (wallets/signer/), the web tier and the other workers without the KEK,
EIP-7702 authorizations, and a send through real Celery workers: `-Q signer` with the KEK, `-Q chain` without."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from gateway.celery import app as celery_app
from tests.wallets.outgoing.conftest import balance, chain, client, hot, mine, network, sign_all, wait_for  # noqa: F401
from wallets import hd
from wallets.devchain import rpc
from wallets.models import DepositAddress, MasterSeed
from wallets.outgoing import services
from wallets.outgoing.models import OutgoingTransaction
from wallets.signer import deposit_key_ref, hot_wallet_key_ref, signer

REPO = Path(__file__).resolve().parents[2]
S = OutgoingTransaction.Status


def test_hot_wallets_and_deposit_keys_come_from_their_own_paths(wallet):
    xpub = wallet.account_xpub
    for index in (0, 1, 7):
        assert signer().address(deposit_key_ref(index=index)) == hd.address_at(xpub, index)
    hot_bsc, hot_devnet = (signer().address(hot_wallet_key_ref(chain_id=c)) for c in (56, 31337))
    assert hot_bsc != hot_devnet
    assert {hot_bsc, hot_devnet}.isdisjoint(hd.address_at(xpub, i) for i in range(100))
    assert hot_wallet_key_ref(chain_id=56) == "m/44'/60'/1'/0/56"


def test_an_unknown_key_is_refused_without_touching_the_seed(wallet):
    from wallets.signer import SignerError

    with pytest.raises(SignerError):
        signer().address("m/44'/60'/2'/0/0")


def test_an_eip7702_authorization_of_a_deposit_address_is_signed_and_applied_by_a_type_4_transaction(
    chain, network, hot, client  # noqa: F811
):
    deposit = hd.address_at(MasterSeed.objects.get().account_xpub, 3)
    delegate = chain.tokens["usdc"]  # any contract: the authorization points the address's code at it
    authorization = signer().sign_authorization(key_ref=deposit_key_ref(index=3), chain_id=network.chain_id,
                                                address=delegate, nonce=0)
    tx = services.outgoing_transaction_create(network=network, to_address=hot.address, gas_limit=100_000,
                                              purpose="test", authorization_list=[authorization.as_json()])
    assert tx.tx_type == 4
    sign_all()
    services.outgoing_transactions_process(network=network, client=client)
    services.outgoing_transactions_process(network=network, client=client)
    tx.refresh_from_db()
    assert tx.status == S.MINED and tx.receipt_status == 1
    onchain = rpc(chain.rpc_url, "eth_getTransactionByHash", [tx.mined_attempt.tx_hash])
    assert int(onchain["type"], 16) == 4
    assert rpc(chain.rpc_url, "eth_getCode", [deposit, "latest"]) == "0xef0100" + delegate[2:]


def _database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


WEB_WITHOUT_KEK = r"""
import json, os, sys
from gateway.wsgi import application  # production settings, as served
from django.conf import settings
from django.test import Client

assert not settings.GATEWAY_KEK
client = Client(HTTP_HOST="pay.example", HTTP_AUTHORIZATION="Bearer " + os.environ["TEST_API_KEY"])
created = client.post("/v1/payment_intents", "amount=1234&currency=usd&payment_method_options[crypto][deposit_options]"
                      "[networks][]=bsc", content_type="application/x-www-form-urlencoded", secure=True)
body = created.json()
fetched = client.get("/v1/payment_intents/" + body.get("id", "x"), secure=True)
page = Client(HTTP_HOST="pay.example").get("/pay/" + body.get("client_secret", "x"), secure=True)
try:
    from wallets.signer import hot_wallet_key_ref, signer
    signer().address(hot_wallet_key_ref(chain_id=56))
    kek_error = None
except Exception as exc:
    kek_error = getattr(exc, "code", repr(exc))
print(json.dumps({"created": created.status_code, "body": body, "fetched": fetched.status_code,
                  "page": page.status_code, "signer_error": kek_error}))
"""


@pytest.mark.django_db(transaction=True)
def test_the_web_app_runs_without_the_kek_and_never_loads_the_signer(networks, wallet, merchant, make_key):
    key = make_key(merchant)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_SETTINGS_MODULE": "gateway.settings.production",
           "SECRET_KEY": "s" * 50, "DATABASE_URL": _database_url(), "GATEWAY_PUBLIC_URL": "https://pay.example",
           "ALLOWED_HOSTS": "pay.example", "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/8"),
           "CELERY_BROKER_URL": "memory://", "TEST_API_KEY": key,
           "GATEWAY_SECRETS_KEK": settings.GATEWAY_SECRETS_KEK,  # the web tier's own key (merchants.secrets)
           "GATEWAY_NETWORKS_REQUIRE_RPC": "false"}  # the seeded networks have no node here (as in gateway.settings.test)
    assert "GATEWAY_KEK" not in env
    result = subprocess.run([sys.executable, "-c", WEB_WITHOUT_KEK], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["created"] == 200, out["body"]
    address = out["body"]["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
    issued = DepositAddress.objects.get(address=address)  # derived from the xpub alone, in a process with no KEK
    assert hd.address_at(wallet.account_xpub, issued.index) == address
    assert out["fetched"] == 200 and out["page"] == 200
    assert out["signer_error"] == "kek_missing"  # the check is real: this process could not have signed


IMPORT_EVERYTHING_BUT_THE_SIGNER = r"""
import importlib, json, pkgutil, sys
import django
django.setup()
import gateway.wsgi, gateway.urls  # noqa
from django.urls import get_resolver
get_resolver().url_patterns  # every view module
imported = []
for package in ("gateway", "merchants", "wallets", "payments", "settlements"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.startswith("wallets.signer") or ".management." in info.name or info.name.endswith("wsgi") \
                or info.name.endswith("asgi") or ".migrations" in info.name or "settings" in info.name:
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
print(json.dumps({"imported": len(imported), "local": "wallets.signer.local" in sys.modules}))
"""


def test_no_module_but_the_signer_imports_the_local_signer_backend():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.wallets.settings_nokek", "CELERY_BROKER_URL": "memory://"}
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING_BUT_THE_SIGNER], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["imported"] > 40 and out["local"] is False


def _worker(queue: str, settings_module: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "gateway", "worker", "-Q", queue, "-P", "solo", "-n",
             f"{queue}-{os.getpid()}@%h", "--without-heartbeat", "--without-mingle", "--without-gossip",
             "-l", "INFO"],
            cwd=REPO, env={**env, "DJANGO_SETTINGS_MODULE": settings_module}, stdout=out, stderr=subprocess.STDOUT,
        )


@pytest.mark.django_db(transaction=True)
def test_a_native_send_goes_through_the_signer_queue_and_a_keyless_chain_worker(
    chain, network, hot, client, tmp_path  # noqa: F811
):
    redis_url = celery_app.conf.broker_url  # the test run's broker (REDIS_URL, or the settings' default)
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url,
           network.rpc_env: chain.rpc_url, "PYTHONUNBUFFERED": "1"}
    workers = [_worker("signer", "gateway.settings.test", env, tmp_path / "signer.log"),
               _worker("chain", "tests.wallets.settings_nokek", env, tmp_path / "chain.log")]
    try:
        before = balance(chain, "0x" + "77" * 20)
        tx = services.outgoing_transaction_create(network=network, to_address="0x" + "77" * 20, gas_limit=21_000,
                                                  value_base_units=31337, purpose="test")  # commits: wakes the signer

        def final():
            tx.refresh_from_db()
            if tx.status == S.FINAL:
                return True
            if tx.status == S.MINED:
                mine(chain)
            celery_app.send_task("wallets.tasks.send_outgoing_transactions")  # what beat does every 3 s
            time.sleep(0.5)
            return False

        wait_for(final, what="the transaction to be final through the workers", timeout=180, interval=0.5)
        assert balance(chain, "0x" + "77" * 20) - before == 31337
        events = list(tx.events.values_list("to_status", flat=True))
        assert events == [S.QUEUED, S.SIGNED, S.BROADCAST, S.MINED, S.FINAL]
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    chain_log = (tmp_path / "chain.log").read_text()
    signer_log = (tmp_path / "signer.log").read_text()
    assert "Task wallets.tasks.send_outgoing_transactions[" in chain_log
    assert "Task wallets.tasks.sign_outgoing_transactions[" not in chain_log  # the keyless worker never signs
    assert "Task wallets.tasks.sign_outgoing_transactions[" in signer_log

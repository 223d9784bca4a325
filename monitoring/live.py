"""Production readiness (`manage.py check_live`): is this deployment fit to take live payments?

Each check returns one or more `LiveCheck` rows (PASS, WARN or FAIL, what it saw, what to do). Run it on each kind
of host before going live and after every deploy or restore: the web host (secrets KEK, settings, chains, email),
and the signer host, where GATEWAY_KEK must open the master seed. Read-only: it writes nothing, sends nothing but
JSON-RPC reads, a Celery broadcast ping and an SMTP connection (closed without a message).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core import checks as django_checks
from django.core import mail
from django.db.models import Max

from audit.verify import audit_chain_verify
from gateway.crypto import kek_fingerprint
from gateway.errors import ConfigurationError
from merchants.models import SecretsKey
from merchants.secrets import SECRETS_KEKS
from settlements.hotcold.models import HotColdSetting
from settlements.hotcold.services import hot_wallet_of
from wallets import crypto as seed_crypto
from wallets.chain.rpc import RpcClient, RpcError, RpcUnavailable, rpc_urls
from wallets.models import MasterSeed, Network, Token

from .probes import endpoint_chain_check, network_chain_check

logger = logging.getLogger(__name__)

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
TOY_EMAIL_BACKENDS = ("console", "locmem", "dummy", "filebased")
SIGNER_QUEUE = "signer"


@dataclass(frozen=True)
class LiveCheck:
    name: str
    status: str  # PASS, WARN or FAIL
    detail: str  # what was seen
    todo: str = ""  # what to do (WARN and FAIL)

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}" + (f" -> {self.todo}" if self.todo else "")

    def as_json(self) -> dict:
        return asdict(self)


def _live_networks() -> list[Network]:
    return list(Network.objects.filter(livemode=True, is_active=True).order_by("code"))


# --- keys -------------------------------------------------------------------------------------------------------------


def check_secrets_kek() -> list[LiveCheck]:
    """GATEWAY_SECRETS_KEK set, not GATEWAY_KEK, and able to unwrap every stored data key of the app secrets."""
    name = "secrets_kek"
    try:
        current = SECRETS_KEKS.current()
    except ConfigurationError as error:
        return [LiveCheck(name, FAIL, error.message, "set GATEWAY_SECRETS_KEK (base64 of 32 random bytes) on every "
                                                     "web and worker host")]
    if settings.GATEWAY_KEK and settings.GATEWAY_KEK == settings.GATEWAY_SECRETS_KEK:
        return [LiveCheck(name, FAIL, "GATEWAY_SECRETS_KEK equals GATEWAY_KEK",
                          "give the application secrets their own KEK, then `manage.py rotate_secrets_kek`")]
    unreadable = []
    for row in SecretsKey.objects.order_by("created"):
        try:
            SECRETS_KEKS.by_fingerprint(row.kek_fingerprint)
        except ConfigurationError:
            unreadable.append(f"{row.id} (KEK {row.kek_fingerprint})")
    if unreadable:
        return [LiveCheck(name, FAIL, f"data keys wrapped by a KEK this host lacks: {', '.join(unreadable)}",
                          "set GATEWAY_SECRETS_KEK (or GATEWAY_SECRETS_KEK_PREVIOUS) to the KEK that wrapped them")]
    return [LiveCheck(name, PASS, f"set (fingerprint {kek_fingerprint(current)}), opens every stored data key")]


def check_seed_kek() -> list[LiveCheck]:
    """The master seed exists; where GATEWAY_KEK is set (the signer host) it opens the seed's data key."""
    name = "seed_kek"
    seed = MasterSeed.objects.first()
    if seed is None:
        return [LiveCheck(name, FAIL, "no master seed", "on the signer host: `manage.py wallet init --show-mnemonic` "
                                                        "(write the words down offline) or `wallet import`")]
    if not settings.GATEWAY_KEK:
        return [LiveCheck(name, WARN, f"GATEWAY_KEK not set on this host (the seed's KEK is {seed.kek_fingerprint})",
                          "right for web and worker hosts; run check_live on the signer host too, where it must be "
                          "set")]
    try:
        seed_crypto.dek_unwrap(wrapped_dek=bytes(seed.wrapped_data_key), wrapped_by=seed.kek_fingerprint)
    except ConfigurationError as error:
        return [LiveCheck(name, FAIL, error.message, "set GATEWAY_KEK to the KEK that wrapped the seed")]
    return [LiveCheck(name, PASS, f"GATEWAY_KEK opens the master seed (KEK {seed.kek_fingerprint})")]


# --- settings ---------------------------------------------------------------------------------------------------------


def check_debug() -> list[LiveCheck]:
    if settings.DEBUG:
        return [LiveCheck("debug", FAIL, "DEBUG is on", "use DJANGO_SETTINGS_MODULE=gateway.settings.production")]
    return [LiveCheck("debug", PASS, "DEBUG is off")]


def check_deploy() -> list[LiveCheck]:
    """Django's system checks with the deployment ones (`manage.py check --deploy`), warnings included."""
    messages = [m for m in django_checks.run_checks(include_deployment_checks=True)
                if m.level >= django_checks.WARNING and not m.is_silenced()]
    if messages:
        ids = ", ".join(sorted({m.id or "?" for m in messages}))
        return [LiveCheck("check_deploy", FAIL, f"{len(messages)} issue(s): {ids}",
                          "run `manage.py check --deploy` and fix each (production settings are clean)")]
    return [LiveCheck("check_deploy", PASS, "`check --deploy` is clean")]


def check_allowed_hosts() -> list[LiveCheck]:
    hosts = list(settings.ALLOWED_HOSTS)
    if not hosts or "*" in hosts:
        return [LiveCheck("allowed_hosts", FAIL, f"ALLOWED_HOSTS is {hosts or 'empty'}",
                          "set ALLOWED_HOSTS to the public host names the proxy forwards")]
    if set(hosts) <= LOCAL_HOSTS:
        return [LiveCheck("allowed_hosts", WARN, f"only local names: {', '.join(hosts)}",
                          "add the public host name (ALLOWED_HOSTS)")]
    return [LiveCheck("allowed_hosts", PASS, ", ".join(hosts))]


def check_webhook_ssrf() -> list[LiveCheck]:
    if settings.GATEWAY_WEBHOOK_ALLOW_LOOPBACK:
        return [LiveCheck("webhook_ssrf", FAIL, "GATEWAY_WEBHOOK_ALLOW_LOOPBACK is on: webhooks may reach this "
                                                "machine's own services", "unset GATEWAY_WEBHOOK_ALLOW_LOOPBACK")]
    return [LiveCheck("webhook_ssrf", PASS, "private, loopback and metadata addresses refused")]


def check_email() -> list[LiveCheck]:
    backend = settings.EMAIL_BACKEND
    if any(f".{toy}." in backend for toy in TOY_EMAIL_BACKENDS):
        return [LiveCheck("email", FAIL, f"{backend} sends nothing", "use the SMTP backend (EMAIL_HOST, EMAIL_PORT ...)")]
    if settings.DEFAULT_FROM_EMAIL.rstrip(">").endswith("@localhost"):
        return [LiveCheck("email", FAIL, f"DEFAULT_FROM_EMAIL is {settings.DEFAULT_FROM_EMAIL}",
                          "set DEFAULT_FROM_EMAIL to an address of your domain")]
    if backend.endswith("smtp.EmailBackend"):
        connection = mail.get_connection(timeout=5)
        try:
            connection.open()
        except OSError as error:
            return [LiveCheck("email", FAIL, f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT} refused: "
                                             f"{type(error).__name__}", "check EMAIL_HOST, EMAIL_PORT and the MTA")]
        finally:
            connection.close()
        return [LiveCheck("email", PASS, f"SMTP {settings.EMAIL_HOST}:{settings.EMAIL_PORT} answers, from "
                                         f"{settings.DEFAULT_FROM_EMAIL}")]
    return [LiveCheck("email", PASS, f"{backend}, from {settings.DEFAULT_FROM_EMAIL}")]


# --- networks and wallets ---------------------------------------------------------------------------------------------


def check_chain_ids() -> list[LiveCheck]:
    """No two networks share a chain id (the constraint `network_unique_chain_id` holds it from the migration on):
    a test network with a live chain's id would derive the live hot wallet's key (m/44'/60'/1'/0/<chain id>) and
    sign test-mode sends with it."""
    by_chain: dict[int, list[Network]] = defaultdict(list)
    for network in Network.objects.order_by("code"):
        by_chain[network.chain_id].append(network)
    clashes = {chain_id: rows for chain_id, rows in by_chain.items() if len(rows) > 1}
    if not clashes:
        return [LiveCheck("chain_ids", PASS, "each network has a chain id of its own")]
    rows = []
    for chain_id, networks in sorted(clashes.items()):
        shown = ", ".join(f"{n.code} ({'live' if n.livemode else 'test'})" for n in networks)
        mixed = len({n.livemode for n in networks}) > 1
        rows.append(LiveCheck(
            f"chain_ids:{chain_id}", FAIL,
            f"{shown} share chain id {chain_id}" + (": test mode would sign with the live keys" if mixed else ""),
            "correct the wrong network's chain id (admin > Networks), or delete the duplicate row"))
    return rows


def check_networks(*, timeout: float = 3.0) -> list[LiveCheck]:
    """Each active live network: every RPC URL answers with the network's chain id; the scanner within its bound."""
    rows = []
    networks = _live_networks()
    if not networks:
        return [LiveCheck("networks", WARN, "no active live network", "activate the mainnets you serve (admin > "
                                                                         "Networks)")]
    for network in networks:
        urls = rpc_urls(code=network.code, rpc_env=network.rpc_env)
        if not urls:
            rows.append(LiveCheck(f"rpc:{network.code}", FAIL, "no RPC URL",
                                  f"set {network.rpc_env or 'its rpc_env'} (comma-separated URLs), or deactivate "
                                  "the network"))
            continue
        health = [endpoint_chain_check(network, url, timeout=timeout) for url in urls]
        bad = [h for h in health if not h.ok]
        if bad:
            rows.append(LiveCheck(f"rpc:{network.code}", FAIL,
                                  "; ".join(f"{h.endpoint} {h.reason}" for h in bad) + f" ({len(health) - len(bad)} "
                                  f"of {len(health)} answer chain id {network.chain_id})",
                                  f"fix {network.rpc_env}: every URL must be a node of chain {network.chain_id}"))
        else:
            rows.append(LiveCheck(f"rpc:{network.code}", PASS,
                                  f"{len(health)} URL(s) answer chain id {network.chain_id}"))
        scan = network_chain_check(network, timeout=timeout)
        bound = settings.GATEWAY_READYZ_MAX_SCANNER_LAG_SECONDS
        if scan.ok:
            rows.append(LiveCheck(f"scanner:{network.code}", PASS,
                                  f"{scan.details['lag_blocks']} blocks ({scan.details['lag_seconds']} s) behind, "
                                  f"bound {bound:g} s"))
        elif not bad:
            seen = scan.details
            detail = (f"lagging: {seen['lag_blocks']} blocks ({seen['lag_seconds']} s) behind, bound {bound:g} s"
                      if scan.reason == "lagging" else scan.reason)
            rows.append(LiveCheck(f"scanner:{network.code}", FAIL, detail,
                                  "start `manage.py watch` (one per chain is enough; its lock keeps one scanning)"))
    return rows


def _balance_and_nonce(network: Network, address: str, timeout: float) -> tuple[int, int] | None:
    """The address's native balance and its count of mined transactions, now; None when no node answers."""
    urls = rpc_urls(code=network.code, rpc_env=network.rpc_env)
    if not urls:
        return None
    client = RpcClient(urls, name=network.code, timeout=timeout, max_attempts=len(urls), retry_budget=0.0,
                       guard_head=False, pool_size=1, expected_chain_id=network.chain_id)
    try:
        balance, nonce = client.batch([("eth_getBalance", [address, "latest"]),
                                       ("eth_getTransactionCount", [address, "latest"])])
        return int(balance, 16), int(nonce, 16)
    except (RpcError, RpcUnavailable):
        return None
    finally:
        client.close()


def check_wallets(*, timeout: float = 3.0) -> list[LiveCheck]:
    """Each active live network: a hot wallet registered, holding native coin for gas above its floor (on the chain,
    now), with no more mined transactions than the database numbered; a cold address set for each active token."""
    rows = []
    for network in _live_networks():
        hot = hot_wallet_of(network)
        settings_rows = {row.token_id: row for row in HotColdSetting.objects.filter(token__network=network,
                                                                                    is_active=True)}
        floor = HotColdSetting.objects.filter(token__network=network).aggregate(
            floor=Max("native_floor_base_units"))["floor"] or 0
        name = f"hot_wallet:{network.code}"
        if hot is None:
            rows.append(LiveCheck(name, FAIL, "no hot wallet", f"on the signer host: `manage.py hot_wallet "
                                                               f"--network {network.code}`, then fund it with gas"))
        else:
            read = _balance_and_nonce(network, hot.address, timeout)
            balance, nonce = read if read else (None, None)
            unit = network.native_currency
            if read is None:
                rows.append(LiveCheck(name, FAIL, f"{hot.address}: balance unreadable", "fix the RPC URLs"))
            elif nonce > hot.next_nonce:
                # The chain has mined more of this address's transactions than the database ever numbered: sends
                # the database does not know (a restore from an older backup, or a key used elsewhere).
                rows.append(LiveCheck(name, FAIL, f"{hot.address} has {nonce} mined transactions, the database "
                                                  f"numbered {hot.next_nonce}: sends it does not know",
                                      "keep the signer stopped; reconcile the missing sends (docs/deploy.md, "
                                      "\"After a restore\")"))
            elif balance == 0 or balance < floor:
                rows.append(LiveCheck(name, FAIL, f"{hot.address} holds {balance} base units of {unit}, floor {floor}",
                                      f"send {unit} to {hot.address}, then `manage.py ledger topup`"))
            elif not floor:
                rows.append(LiveCheck(name, WARN, f"{hot.address} holds {balance} base units of {unit}; no gas floor",
                                      "set a native floor (`manage.py hot_cold set ... --native-floor N`)"))
            else:
                rows.append(LiveCheck(name, PASS, f"{hot.address} holds {balance} base units of {unit}, floor "
                                                  f"{floor}"))
        tokens = list(Token.objects.filter(network=network, is_active=True).order_by("currency"))
        missing = [t.currency for t in tokens if t.id not in settings_rows or not settings_rows[t.id].cold_address]
        if missing:
            rows.append(LiveCheck(f"cold_address:{network.code}", FAIL, f"no cold address for {', '.join(missing)}",
                                  f"`manage.py hot_cold set --network {network.code} --token T --floor N --ceiling N "
                                  "--cold-address 0x...`"))
        elif tokens:
            rows.append(LiveCheck(f"cold_address:{network.code}", PASS,
                                  ", ".join(f"{t.currency} -> {settings_rows[t.id].cold_address}" for t in tokens)))
    return rows


# --- processes and records --------------------------------------------------------------------------------------------


def check_signer(*, timeout: float = 1.5) -> list[LiveCheck]:
    """A Celery worker consuming the `signer` queue answers a broadcast (one round trip through the broker)."""
    from gateway.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)  # a dead broker fails now, not after retries
            queues = app.control.inspect(timeout=timeout, connection=conn).active_queues() or {}
    except Exception as error:  # the broker itself is down: kombu's errors vary by transport
        return [LiveCheck("signer", FAIL, f"broker unreachable ({type(error).__name__})", "check CELERY_BROKER_URL")]
    signers = sorted(worker for worker, consumed in queues.items()
                     if any(q.get("name") == SIGNER_QUEUE for q in consumed or []))
    if not signers:
        return [LiveCheck("signer", FAIL, f"no worker consumes the {SIGNER_QUEUE!r} queue ({len(queues)} worker(s) "
                                          "answered)", "start `celery -A gateway worker -Q signer -c 1` on the "
                                                       "signer host, with GATEWAY_KEK")]
    return [LiveCheck("signer", PASS, f"{', '.join(signers)} consume the {SIGNER_QUEUE!r} queue")]


def check_audit(*, last: int = 1000) -> list[LiveCheck]:
    report = audit_chain_verify(last=last)
    if not report.ok:
        return [LiveCheck("audit", FAIL, report.problem, "stop and investigate; `manage.py audit verify` walks the "
                                                         "whole chain")]
    return [LiveCheck("audit", PASS, f"the last {report.records} records verify, head #{report.head_seq}")]


CHECKS: dict[str, Callable[[], list[LiveCheck]]] = {
    "secrets_kek": check_secrets_kek,
    "seed_kek": check_seed_kek,
    "debug": check_debug,
    "check_deploy": check_deploy,
    "allowed_hosts": check_allowed_hosts,
    "webhook_ssrf": check_webhook_ssrf,
    "email": check_email,
    "chain_ids": check_chain_ids,
    "networks": check_networks,
    "wallets": check_wallets,
    "signer": check_signer,
    "audit": check_audit,
}


def live_checks(*, skip: frozenset[str] = frozenset()) -> list[LiveCheck]:
    """Every check not in `skip`, in order; a check that raised is a FAIL naming the exception, never a crash."""
    rows = []
    for name, check in CHECKS.items():
        if name in skip:
            continue
        try:
            rows.extend(check())
        except Exception as error:  # one broken check must not hide the others
            logger.exception("check_live: the check %s raised", name)
            rows.append(LiveCheck(name, FAIL, f"the check raised {type(error).__name__}", "see the log (stderr)"))
    return rows

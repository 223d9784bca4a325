"""`manage.py wallet rotate-kek` while other processes draw deposit addresses (creating intents in a loop) and a
process started before the rotation (old KEK current, the new one known as previous) keeps decrypting the seed.
Every process is a child forked from the test process, with its own PostgreSQL connection; the rotation is the real
command (call_command) under the rotated settings. Nothing fails, no address index is handed out twice, and
afterwards the seed decrypts with the new KEK alone."""
import base64
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from payments.models import PaymentIntent
from payments.services import PaymentIntentInput, payment_intent_create
from tests.processes import child_exit_code, fork_child, wait_until
from wallets import crypto, services
from wallets.models import DepositAddress, MasterSeed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("networks"), pytest.mark.slow]

KEK_OLD = b"k" * 32  # GATEWAY_KEK of the test settings
KEK_NEW = bytes(range(7, 39))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def allocate_until(stop: Path, merchant) -> None:
    while not stop.exists():
        payment_intent_create(merchant=merchant, livemode=False,
                              data=PaymentIntentInput(amount=500, currency="usd", networks=["bsc"]))


def decrypt_until(stop: Path, expected: str) -> None:
    """A process started before the rotation: the old KEK current, the new one known as previous."""
    with override_settings(GATEWAY_KEK=b64(KEK_OLD), GATEWAY_KEK_PREVIOUS=[b64(KEK_NEW)]):
        while not stop.exists():
            assert services.wallet_mnemonic_reveal() == expected


def rotate() -> None:
    with override_settings(GATEWAY_KEK=b64(KEK_NEW), GATEWAY_KEK_PREVIOUS=[b64(KEK_OLD)]):
        call_command("wallet", "rotate-kek", "--json")


def test_rotate_kek_while_processes_allocate_addresses(wallet, merchant, tmp_path):
    mnemonic = services.wallet_mnemonic_reveal()
    stop = tmp_path / "stop"
    children = {
        name: fork_child(target, log=tmp_path / f"{name}.log") for name, target in [
            ("allocate-1", lambda: allocate_until(stop, merchant)),
            ("allocate-2", lambda: allocate_until(stop, merchant)),
            ("decrypt", lambda: decrypt_until(stop, mnemonic)),
        ]
    }
    try:
        # Given the allocators at work
        wait_until(lambda: PaymentIntent.objects.count() >= 10, timeout=60, what="the allocators to start")
        # When the KEK is rotated while they run
        rotator = fork_child(rotate, log=tmp_path / "rotate.log")
        assert child_exit_code(rotator, timeout=120) == 0, (tmp_path / "rotate.log").read_text()
        rotated_at = PaymentIntent.objects.count()
        wait_until(lambda: PaymentIntent.objects.count() >= rotated_at + 10, timeout=60,
                   what="the allocators to go on after the rotation")
    finally:
        stop.touch()
        codes = {name: child_exit_code(pid, timeout=60) for name, pid in children.items()}
    # Then no process failed
    assert codes == dict.fromkeys(children, 0), {n: (tmp_path / f"{n}.log").read_text() for n, c in codes.items() if c}
    # every intent has its own address, every index once
    intents = PaymentIntent.objects.count()
    assert intents >= 20
    assert DepositAddress.objects.count() == intents
    assert DepositAddress.objects.values("index").distinct().count() == intents
    assert DepositAddress.objects.values("address").distinct().count() == intents
    # and the seed is wrapped by the new KEK and decrypts with it alone
    seed = MasterSeed.objects.get()
    assert seed.kek_fingerprint == crypto.kek_fingerprint(KEK_NEW) and seed.rotated is not None
    with override_settings(GATEWAY_KEK=b64(KEK_NEW), GATEWAY_KEK_PREVIOUS=[]):
        assert services.wallet_mnemonic_reveal() == mnemonic
    print(f"\nrotate-kek during allocation: {intents} intents, {intents} distinct address indexes")

"""What the payout kill test's children run (tests/wallets/chain/forker.py `call ...`): the payouts' beat task
(send and settle) in an endless loop, as a `default` worker runs it. The signer and the sender are
tests/wallets/outgoing/loop.py's."""
import time

from settlements.payouts import payouts_advance


def advance_forever() -> None:
    while True:
        payouts_advance()
        time.sleep(0.005)

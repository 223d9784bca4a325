"""What the hot/cold kill test's children run (tests/wallets/chain/forker.py `call ...`): the beat task's work in an
endless loop, as a worker runs it. Imported at module level in the forker, before it forks."""
import time

from settlements.hotcold.services import hot_cold_run


def hot_cold_forever() -> None:
    while True:
        hot_cold_run()
        time.sleep(0.005)

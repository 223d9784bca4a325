import pytest

from wallets.models import MasterSeed, Network, Token
from wallets.networks import clear_network_cache, seed_networks


@pytest.fixture
def networks(db):
    """The seeded networks (a transactional test's flush removes the migration's rows, so seed again)."""
    seed_networks(Network, Token)
    clear_network_cache()
    yield
    clear_network_cache()


@pytest.fixture
def wallet(db):
    from wallets.services import wallet_init

    return MasterSeed.objects.first() or wallet_init()


@pytest.fixture
def ready(networks, wallet):
    """A gateway that can take payments in test mode."""

import pytest


@pytest.fixture
def ready(networks, wallet):
    """A gateway that can take payments in test mode."""

"""The monitoring tests pay intents on the session's anvil chain with the payments tests' fixtures."""
from tests.chain import anvil_chain  # noqa: F401 (fixture)
from tests.payments.conftest import devnet, devnet_chain  # noqa: F401 (fixtures)

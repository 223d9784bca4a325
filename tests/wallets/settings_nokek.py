"""Test settings without GATEWAY_KEK: what the web tier and the non-signer workers run with."""
from gateway.settings.test import *  # noqa: F401,F403

GATEWAY_KEK = ""
GATEWAY_KEK_PREVIOUS = []

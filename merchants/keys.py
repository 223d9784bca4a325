"""API key format and hashing. A key is shown once; only its SHA-256 is stored."""
import hashlib
import re

from gateway.ids import random_token

KEY_RE = re.compile(r"^(sk|rk|pk)_(test|live)_[A-Za-z0-9]{24,128}$")


def generate_key(prefix: str, livemode: bool) -> str:
    return f"{prefix}_{'live' if livemode else 'test'}_{random_token(40)}"


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def redact(raw: str) -> str:
    head = raw[: raw.index("_", 3) + 1]
    return f"{head}...{raw[-4:]}"

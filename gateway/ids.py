"""Prefixed, unguessable object ids in Stripe's style (`pi_...`, `evt_...`)."""
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


_LIMIT = 256 - 256 % len(_ALPHABET)  # bytes at or above it are dropped, so every character is equally likely


def random_token(length: int = 24) -> str:
    """`length` characters of [A-Za-z0-9] from the OS's CSPRNG: one urandom read instead of one call per character."""
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(length + 8) if b < _LIMIT)
    return "".join(chars[:length])


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_{random_token(length)}"

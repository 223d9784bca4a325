"""Prefixed, unguessable object ids in Stripe's style (`pi_...`, `evt_...`)."""
import re
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


# The shape of every id new_id() makes: a lowercase prefix, "_", then [A-Za-z0-9]. Anything else (a NUL, non-ASCII,
# an overlong value) cannot name an object, so it is refused before it reaches a query.
_ID_RE = re.compile(r"([a-z]{1,8})_[A-Za-z0-9]{1,64}")


def id_is_valid(value, prefix: str | None = None) -> bool:
    """Whether `value` has the shape of an id (of `prefix`'s objects when given: id_is_valid(x, "pi"))."""
    if not isinstance(value, str):
        return False
    match = _ID_RE.fullmatch(value)
    return match is not None and (prefix is None or match.group(1) == prefix)

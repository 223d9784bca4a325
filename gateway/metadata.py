"""Stripe's metadata update rules, shared by every object that carries metadata."""
from .errors import DomainError

MAX_KEYS = 50


def metadata_merge(current: dict, update: dict | None, *, clear: bool = False) -> dict:
    """The metadata after an update: `clear` unsets every key first; in `update` an empty value unsets its key, any
    other value sets it. Refuses (naming `metadata`) a result of more than 50 keys."""
    merged = {} if clear else dict(current)
    for key, value in (update or {}).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_KEYS:
        raise DomainError(
            code="parameter_invalid", param="metadata",
            message=f"Invalid metadata: an object can have at most {MAX_KEYS} metadata keys.",
        )
    return merged

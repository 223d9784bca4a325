"""The input rules every /v1 request passes before a serializer sees it (docs/architecture.md, "Input rules").

- Strings: no NUL, no other C0 control but tab, newline and carriage return, no lone surrogate, in any key or value.
- Integers: ASCII digits only ("１００" and "²" are not numbers here, although str.isdigit says so).
- Bodies: at most GATEWAY_API_MAX_BODY_BYTES read, JSON at most GATEWAY_API_MAX_JSON_DEPTH deep.
"""
import re

from django.conf import settings
from django.core.exceptions import ValidationError

from .errors import InvalidRequest, StripeAPIError, bracket_path

# C0 controls except \t \n \r, and the UTF-16 surrogates (a JSON "\ud800" decodes to one; PostgreSQL refuses both).
_DISALLOWED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_ASCII_INT = re.compile(r"-?[0-9]{1,30}")


def text_is_allowed(value: str) -> bool:
    return _DISALLOWED.search(value) is None


def validate_text(value) -> None:
    """The same rule as a Django validator, for the forms of the portal."""
    if isinstance(value, str) and not text_is_allowed(value):
        raise ValidationError("This value contains a disallowed character (a control character).",
                              code="disallowed_character")


def tree_is_allowed(data) -> bool:
    """Every key and string value in a decoded JSON tree passes the rule (the admin's JSON fields)."""
    if isinstance(data, dict):
        return all((not isinstance(k, str) or text_is_allowed(k)) and tree_is_allowed(v) for k, v in data.items())
    if isinstance(data, list):
        return all(tree_is_allowed(v) for v in data)
    return not isinstance(data, str) or text_is_allowed(data)


def printable(value: str) -> str:
    """`value` with its disallowed characters written as escapes, safe to echo in an error message."""
    return _DISALLOWED.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), value)


def ascii_int(text: str) -> int | None:
    """The integer that `text` spells in ASCII digits (an optional minus, at most 30 digits), else None."""
    return int(text) if _ASCII_INT.fullmatch(text) else None


def tree_check(data, path: tuple = ()) -> None:
    """Refuse (400, naming the parameter) any key or string value in a parsed body or query with a disallowed
    character."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and not text_is_allowed(key):
                param = bracket_path(tuple(printable(str(p)) for p in path + (key,)))
                raise InvalidRequest(f"Invalid parameter name `{param}`: it contains a disallowed character "
                                     "(a NUL, a control character or a lone surrogate).", param=param)
            tree_check(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            tree_check(value, path + (index,))
    elif isinstance(data, str) and not text_is_allowed(data):
        param = bracket_path(tuple(printable(str(p)) for p in path)) or None
        raise InvalidRequest(f"Invalid {param or 'parameter'}: the value contains a disallowed character "
                             "(a NUL, a control character or a lone surrogate).", param=param)


class RequestTooLarge(StripeAPIError):
    status_code = 413
    default_code = "request_too_large"


def body_read(stream, parser_context) -> bytes:
    """The request body, refused (413) beyond GATEWAY_API_MAX_BODY_BYTES: by its Content-Length before anything is
    read, and by counting otherwise (a chunked body, a wrong length): never more than the limit + 1 bytes are read."""
    limit = settings.GATEWAY_API_MAX_BODY_BYTES
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", {}) if request is not None else {}
    declared = ascii_int(str(meta.get("CONTENT_LENGTH") or "0").strip())
    if declared is not None and declared > limit:
        raise _too_large(limit)
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body is larger than the limit of {limit} bytes.")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_OPEN = frozenset(b"[{")


def json_depth_check(raw: bytes) -> None:
    """Refuse (400) a JSON text nested deeper than GATEWAY_API_MAX_JSON_DEPTH, before it is parsed: brackets are
    counted outside strings. Cheap for ordinary bodies, which have fewer brackets than the limit."""
    limit = settings.GATEWAY_API_MAX_JSON_DEPTH
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw):
        if byte in _JSON_OPEN:
            depth += 1
            if depth > limit:
                raise InvalidRequest(f"The JSON request body is nested too deeply (more than {limit} levels).")
        elif byte in b"]}":
            depth -= 1

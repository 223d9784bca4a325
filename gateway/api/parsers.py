"""Stripe's bracket notation (`metadata[k]=v`, `items[0][price]=x`, `x[]=y`) for form bodies and query strings."""
import json
import re
from urllib.parse import parse_qsl

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from .input import body_read, json_depth_check, tree_check

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
MAX_DEPTH = 8
MAX_PARAMS = 1000
# A list index: ASCII digits only (str.isdigit also takes "²", which int() refuses).
_INDEX = re.compile(r"[0-9]{1,6}")


class BracketError(ParseError):
    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def _split_key(key: str) -> list[str]:
    head_end = key.find("[")
    if head_end == -1:
        if "]" in key:
            raise BracketError(key, f"Invalid parameter name `{key}`: unbalanced brackets.")
        return [key]
    head, rest = key[:head_end], key[head_end:]
    parts = [head]
    pos = 0
    for match in _SEGMENT.finditer(rest):
        if match.start() != pos:
            break
        parts.append(match.group(1))
        pos = match.end()
    if not head or pos != len(rest):
        raise BracketError(key, f"Invalid parameter name `{key}`: unbalanced or misplaced brackets.")
    if len(parts) > MAX_DEPTH:
        raise BracketError(key, f"Invalid parameter name `{key}`: nested too deeply.")
    return parts


def _listify(node, path: str):
    """Turn dicts whose keys are all indexes (or `[]` appends) into lists, depth first."""
    if not isinstance(node, dict):
        return node
    for key in list(node):
        node[key] = _listify(node[key], f"{path}[{key}]" if path else key)
    keys = list(node)
    if keys and all(isinstance(k, int) for k in keys):
        return [node[k] for k in sorted(keys)]
    if any(isinstance(k, int) for k in keys):
        raise BracketError(path, f"Invalid parameter `{path}`: mixes list indexes and named keys.")
    return node


def parse_nested(pairs) -> dict:
    """Build a nested dict from (key, value) pairs written in Stripe's bracket notation."""
    root: dict = {}
    appended: dict[int, int] = {}
    count = 0
    for key, value in pairs:
        count += 1
        if count > MAX_PARAMS:
            raise ParseError("Too many parameters.")
        parts = _split_key(key)
        node = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            name = "".join([parts[0]] + [f"[{p}]" for p in parts[1:depth + 1]])
            if part == "" and depth > 0:
                part = appended.get(id(node), 0)
                appended[id(node)] = part + 1
            elif depth > 0 and _INDEX.fullmatch(part):
                part = int(part)
            if last:
                if part in node and (isinstance(node[part], dict) or node[part] != value):
                    raise BracketError(name, f"Parameter `{name}` was given more than once.")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise BracketError(name, f"Parameter `{name}` is both a value and an object.")
                node = child
    return _listify(root, "")


def parse_query(query_string: str) -> dict:
    params = parse_nested(parse_qsl(query_string, keep_blank_values=True))
    tree_check(params)
    return params


class StripeFormParser(BaseParser):
    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            body = body_read(stream, parser_context).decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError("The request body is not valid UTF-8.") from exc
        data = parse_nested(parse_qsl(body, keep_blank_values=True))
        tree_check(data)
        return data


class StripeJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = body_read(stream, parser_context)
        if not raw.strip():
            return {}
        json_depth_check(raw)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Invalid JSON in the request body: {exc}") from exc
        except RecursionError as exc:  # json_depth_check keeps it away; a belt against a crash all the same
            raise ParseError("The JSON request body is nested too deeply.") from exc
        if not isinstance(data, dict):
            raise ParseError("The JSON request body must be an object.")
        tree_check(data)
        return data

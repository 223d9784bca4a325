"""Validation of the hot/cold settings at the edge (admin form, `manage.py hot_cold set`)."""
from django.core.exceptions import ValidationError
from eth_utils import is_checksum_address, is_hex_address

ZERO_ADDRESS = "0x" + "0" * 40


def cold_address_validate(value: str) -> None:
    """A 0x-prefixed 20-byte hex address; mixed case must be a valid EIP-55 checksum (all lower or all upper case
    carries none); never the zero address."""
    value = (value or "").strip()
    if not is_hex_address(value) or not value.startswith("0x"):
        raise ValidationError("Enter a 0x-prefixed address of 40 hex digits.", code="invalid")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValidationError("The address's mixed-case checksum (EIP-55) is wrong: check it for a typo.",
                              code="checksum")
    if value.lower() == ZERO_ADDRESS:
        raise ValidationError("The zero address burns what is sent to it.", code="zero")

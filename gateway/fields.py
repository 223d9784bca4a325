from decimal import Decimal

from django.core import validators
from django.db import models
from django.utils.functional import cached_property


class BaseUnitsField(models.DecimalField):
    """A token amount in base units: NUMERIC(78,0) in PostgreSQL, a Python int everywhere else."""

    description = "Integer token amount in base units (uint256 range)"

    def __init__(self, *args, **kwargs):
        kwargs["max_digits"] = 78
        kwargs["decimal_places"] = 0
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("max_digits", None)
        kwargs.pop("decimal_places", None)
        return name, path, args, kwargs

    @cached_property
    def validators(self):
        # DecimalField's DecimalValidator reads a Decimal's digits, but values here are ints (a model form would 500).
        kept = [v for v in super().validators if not isinstance(v, validators.DecimalValidator)]
        return [*kept, _at_most_78_digits]

    def from_db_value(self, value, expression, connection):
        return None if value is None else int(value)

    def to_python(self, value):
        if value is None or isinstance(value, int):
            return value
        value = super().to_python(value)
        return int(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("Token amounts must never be floats")
        return Decimal(int(value))


def _at_most_78_digits(value: int) -> None:
    if len(str(abs(int(value)))) > 78:
        raise validators.ValidationError("Ensure that there are no more than 78 digits.", code="max_digits")

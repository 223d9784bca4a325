"""Form fields that follow the input rules of the API (gateway.api.input) in the admin and the portal."""
from django import forms

from gateway.api.input import ascii_int


class AsciiIntegerField(forms.IntegerField):
    """An integer written in ASCII digits: Django's own takes "１００" (fullwidth) as 100."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and ascii_int(value.strip()) is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)

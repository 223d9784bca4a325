"""The merchant settings that decide money have bounds: in the model (validators and CHECK constraints) and in the
admin's form, so an unfunded intent can never count as paid (a tolerance of 10,000 bps did that)."""
import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from merchants.models import (
    PAYMENT_EXPIRY_MINUTES_MAX, PAYMENT_EXPIRY_MINUTES_MIN, UNDERPAYMENT_TOLERANCE_BPS_MAX, Merchant,
)

pytestmark = pytest.mark.django_db

OUT_OF_BOUNDS = [
    ("underpayment_tolerance_bps", UNDERPAYMENT_TOLERANCE_BPS_MAX + 1),
    ("underpayment_tolerance_bps", 10_000),
    ("payment_expiry_minutes", PAYMENT_EXPIRY_MINUTES_MIN - 1),
    ("payment_expiry_minutes", 0),
    ("payment_expiry_minutes", PAYMENT_EXPIRY_MINUTES_MAX + 1),
]


@pytest.mark.parametrize("field,value", OUT_OF_BOUNDS)
def test_the_database_refuses_a_setting_out_of_bounds(merchant, field, value):
    before = getattr(merchant, field)

    with pytest.raises(IntegrityError), transaction.atomic():
        Merchant.objects.filter(pk=merchant.pk).update(**{field: value})

    merchant.refresh_from_db()
    assert getattr(merchant, field) == before


@pytest.mark.parametrize("field,value", OUT_OF_BOUNDS)
def test_model_validation_names_the_field(merchant, field, value):
    setattr(merchant, field, value)

    with pytest.raises(ValidationError) as refused:
        merchant.full_clean()

    assert field in refused.value.message_dict


@pytest.mark.parametrize("field,value", [("underpayment_tolerance_bps", 0),
                                         ("underpayment_tolerance_bps", UNDERPAYMENT_TOLERANCE_BPS_MAX),
                                         ("payment_expiry_minutes", PAYMENT_EXPIRY_MINUTES_MIN),
                                         ("payment_expiry_minutes", PAYMENT_EXPIRY_MINUTES_MAX)])
def test_the_bounds_themselves_are_accepted(merchant, field, value):
    Merchant.objects.filter(pk=merchant.pk).update(**{field: value})
    merchant.refresh_from_db()

    merchant.full_clean()
    assert getattr(merchant, field) == value


def admin_form(rf, merchant, **changes):
    model_admin = admin.site._registry[Merchant]
    request = rf.get("/admin/")
    request.user = type("Staff", (), {"is_active": True, "is_staff": True, "is_superuser": True,
                                      "has_perm": lambda *a, **k: True})()
    form_class = model_admin.get_form(request, merchant)
    data = {"name": merchant.name, "email": merchant.email, "payment_expiry_minutes": merchant.payment_expiry_minutes,
            "underpayment_tolerance_bps": merchant.underpayment_tolerance_bps, "enabled_networks": "[]",
            "is_active": "on", "limit_currency": merchant.limit_currency, **changes}
    return form_class(data=data, instance=merchant)


@pytest.mark.parametrize("field,value", OUT_OF_BOUNDS + [("underpayment_tolerance_bps", "１００"),
                                                         ("payment_expiry_minutes", "-5")])
def test_the_admin_form_refuses_a_setting_out_of_bounds(rf, merchant, field, value):
    form = admin_form(rf, merchant, **{field: value})

    assert not form.is_valid()
    assert field in form.errors


def test_the_admin_form_takes_a_setting_within_bounds(rf, merchant):
    form = admin_form(rf, merchant, underpayment_tolerance_bps=UNDERPAYMENT_TOLERANCE_BPS_MAX,
                      payment_expiry_minutes=60)

    assert form.is_valid(), form.errors

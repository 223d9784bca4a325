"""Admin: sweep policies are edited within their bounds; sweeps are shown, never written by hand."""
import pytest

from settlements.models import SweepPolicy

from .conftest import bsc, token

pytestmark = pytest.mark.usefixtures("ledger_ready")


def policy_form(**changes) -> dict:
    return {"network": bsc().pk, "token": token().pk, "is_active": "on", "min_amount_base_units": 10**18,
            "max_gas_price_wei": "", "batch_window_seconds": 60, "max_batch_size": 100, **changes}


@pytest.mark.parametrize("field, value", [("max_batch_size", 0), ("max_batch_size", 501),
                                          ("min_amount_base_units", -1), ("max_gas_price_wei", 0)])
def test_a_sweep_policy_out_of_bounds_is_refused_naming_the_field(admin_client, field, value):
    response = admin_client.post("/admin/settlements/sweeppolicy/add/", policy_form(**{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors.keys() == {field}
    assert not SweepPolicy.objects.exists()


def test_a_sweep_policy_is_added_and_sweeps_are_read_only(admin_client):
    assert admin_client.post("/admin/settlements/sweeppolicy/add/", policy_form()).status_code == 302
    assert SweepPolicy.objects.get().max_batch_size == 100
    assert admin_client.get("/admin/settlements/sweep/").status_code == 200
    assert admin_client.get("/admin/settlements/sweep/add/").status_code == 403

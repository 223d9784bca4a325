"""The ops commands: create_merchant, create_api_key, roll_api_key. JSON out, keys that work, clear refusals."""
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from merchants import services
from merchants.keys import hash_key
from merchants.models import ApiKey, Merchant

pytestmark = pytest.mark.django_db


def run(*args) -> dict:
    out = StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def nothing_written(merchants=0, users=0, keys=0):
    return (Merchant.objects.count(), get_user_model().objects.count(), ApiKey.objects.count()) == (
        merchants, users, keys
    )


# create_merchant

def test_create_merchant_prints_its_id_and_gives_a_portal_login():
    out = run("create_merchant", "--email", "Shop@Example.com", "--name", "Shop", "--password", "pw-123456")

    merchant = Merchant.objects.get(pk=out["merchant_id"])
    assert out == {"merchant_id": merchant.id, "email": "shop@example.com", "name": "Shop", "portal_login": True}
    assert merchant.user.check_password("pw-123456")


def test_create_merchant_without_a_password_has_no_login():
    out = run("create_merchant", "--email", "shop@example.com")

    assert out["portal_login"] is False and out["name"] == "shop"
    assert Merchant.objects.get(pk=out["merchant_id"]).user is None
    assert not get_user_model().objects.exists()


def test_a_duplicate_email_is_refused_and_writes_nothing():
    run("create_merchant", "--email", "shop@example.com", "--password", "pw-123456")

    with pytest.raises(CommandError, match="already exists"):
        run("create_merchant", "--email", "SHOP@example.com", "--password", "other-pw")
    assert nothing_written(merchants=1, users=1)


def test_an_email_already_used_by_another_login_is_refused_and_writes_nothing():
    get_user_model().objects.create_user(username="ops@example.com", password="x")

    with pytest.raises(CommandError, match="ops@example.com already exists"):
        run("create_merchant", "--email", "ops@example.com", "--password", "pw-123456")
    assert nothing_written(users=1)


def test_an_invalid_email_is_refused_and_writes_nothing():
    with pytest.raises(CommandError, match="not a valid email"):
        run("create_merchant", "--email", "not-an-email", "--password", "pw-123456")
    assert nothing_written()


# create_api_key

@pytest.mark.parametrize("mode, prefix", [("test", "sk_test_"), ("live", "sk_live_")])
@pytest.mark.parametrize("by", ["id", "email"])
def test_create_api_key_prints_a_key_that_authenticates(merchant, key_works, mode, prefix, by):
    out = run("create_api_key", "--merchant", merchant.id if by == "id" else merchant.email.upper(), "--mode", mode)

    assert out["merchant_id"] == merchant.id and out["livemode"] is (mode == "live")
    assert out["secret_key"].startswith(prefix)
    key = ApiKey.objects.get(pk=out["key_id"], merchant=merchant)
    assert key.key_hash == hash_key(out["secret_key"]) and key.kind == "secret"
    assert key_works(out["secret_key"])


def test_create_api_key_of_another_kind_names_its_field(merchant):
    out = run("create_api_key", "--merchant", merchant.id, "--mode", "test", "--kind", "publishable")

    assert out["publishable_key"].startswith("pk_test_") and "secret_key" not in out


def test_an_unknown_merchant_is_refused_and_writes_nothing(merchant):
    with pytest.raises(CommandError, match="No merchant with id or email 'nobody@example.com'"):
        run("create_api_key", "--merchant", "nobody@example.com", "--mode", "test")
    assert not ApiKey.objects.exists()


def test_a_bad_mode_is_refused_and_writes_nothing(merchant):
    with pytest.raises(CommandError, match="invalid choice: 'prod'"):
        run("create_api_key", "--merchant", merchant.id, "--mode", "prod")
    assert not ApiKey.objects.exists()


# roll_api_key

def test_roll_api_key_prints_a_new_key_and_the_old_one_stops_at_once(merchant, make_key, key_works):
    old_raw = make_key(merchant, livemode=True)
    old = ApiKey.objects.get(key_hash=hash_key(old_raw))

    out = run("roll_api_key", "--key-id", old.id)

    new = ApiKey.objects.get(pk=out["key_id"])
    assert out["rolled_key_id"] == old.id and out["merchant_id"] == merchant.id and out["livemode"] is True
    assert out["secret_key"].startswith("sk_live_") and new.key_hash == hash_key(out["secret_key"])
    assert out["rolled_key_expires_at"] <= timezone.now().timestamp()
    assert key_works(out["secret_key"]) and not key_works(old_raw)


def test_roll_api_key_with_a_grace_period_keeps_the_old_key_until_it_ends(merchant, make_key, key_works, key_clock):
    old_raw = make_key(merchant)
    old = ApiKey.objects.get(key_hash=hash_key(old_raw))
    before = timezone.now()

    out = run("roll_api_key", "--key-id", old.id, "--expires-in-hours", "24")

    old.refresh_from_db()
    assert before + timedelta(hours=24) <= old.expires_at <= timezone.now() + timedelta(hours=24)
    assert out["rolled_key_expires_at"] == int(old.expires_at.timestamp())
    assert key_works(old_raw) and key_works(out["secret_key"])
    key_clock(old.expires_at + timedelta(seconds=1))
    assert not key_works(old_raw) and key_works(out["secret_key"])


def test_a_key_is_rolled_once(merchant, make_key):
    old = ApiKey.objects.get(key_hash=hash_key(make_key(merchant)))
    run("roll_api_key", "--key-id", old.id, "--expires-in-hours", "1")
    old.refresh_from_db()
    first_end = old.expires_at

    # a second roll (or the same one submitted twice) would make a replacement nobody holds: refused
    with pytest.raises(CommandError, match="already rolled"):
        run("roll_api_key", "--key-id", old.id, "--expires-in-hours", "168")
    old.refresh_from_db()
    assert old.expires_at == first_end and ApiKey.objects.count() == 2


@pytest.mark.parametrize("hours", ["-1", "169", "nan", "soon"])
def test_roll_api_key_refuses_a_bad_grace_period_and_changes_nothing(merchant, make_key, key_works, hours):
    raw = make_key(merchant)
    key = ApiKey.objects.get(key_hash=hash_key(raw))

    with pytest.raises(CommandError, match="expires-in-hours"):
        run("roll_api_key", "--key-id", key.id, "--expires-in-hours", hours)
    key.refresh_from_db()
    assert key.expires_at is None and ApiKey.objects.count() == 1 and key_works(raw)


def test_roll_api_key_refuses_an_unknown_or_expired_key(merchant, make_key):
    with pytest.raises(CommandError, match="No API key 'key_nope'"):
        run("roll_api_key", "--key-id", "key_nope")
    key = services.api_key_revoke(api_key=ApiKey.objects.get(key_hash=hash_key(make_key(merchant))))

    with pytest.raises(CommandError, match="has expired"):
        run("roll_api_key", "--key-id", key.id)
    assert ApiKey.objects.count() == 1


def test_the_roll_service_itself_refuses_a_grace_beyond_seven_days_and_changes_nothing(merchant, make_key):
    from datetime import timedelta

    from gateway.errors import DomainError

    key = ApiKey.objects.get(key_hash=hash_key(make_key(merchant)))
    with pytest.raises(DomainError) as refused:
        services.api_key_roll(api_key=key, grace=timedelta(days=7, seconds=1))
    assert refused.value.param == "expires_in_hours"
    key.refresh_from_db()
    assert key.expires_at is None and ApiKey.objects.count() == 1

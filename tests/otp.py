"""TOTP in tests: devices, their current code, and sessions verified by one (the portal and the admin need it)."""
import re

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp

from gateway import otp


def totp_device(user):
    """A confirmed device for the user (as `manage.py staff_totp_enrol` or portal enrolment leaves it)."""
    return otp.totp_device_replace(user=user, name="test phone")


def totp_code(device) -> str:
    """The device's current code, usable now: django-otp refuses a code twice in one time step and slows down
    after a failure, so both are reset first."""
    device.refresh_from_db()
    device.last_t = -1
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.save()
    return str(totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)).zfill(device.digits)


def login_verified(client, user):
    """Logs the client in as the user with a session verified by the user's (new, if none) TOTP device."""
    device = otp.totp_device_confirmed(user=user) or totp_device(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def page_without_csrf(response) -> str:
    """A page's text without its CSRF token and CSP nonce (different in every response), to compare two answers."""
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    return re.sub(r'nonce="[^"]+"', "", page)

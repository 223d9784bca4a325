"""The portal's emails: sign-up verification and team invitations. Links are absolute (GATEWAY_PUBLIC_URL).

The sign-up link carries a signed, timestamped token (django.core.signing, salted for this use only) naming the
login and its address: it cannot be forged without SECRET_KEY and stops working after SIGNUP_LINK_MAX_AGE."""
from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.urls import reverse

SIGNUP_SALT = "merchants.signup.verify"
SIGNUP_LINK_MAX_AGE = 3 * 24 * 3600  # seconds


def _url(path: str) -> str:
    return settings.GATEWAY_PUBLIC_URL + path


def signup_token(*, user) -> str:
    return signing.dumps({"user": user.pk, "email": user.email}, salt=SIGNUP_SALT)


def signup_token_user_id(token: str) -> int | None:
    """The login the sign-up token names, or None for a bad or expired token."""
    try:
        data = signing.loads(token, salt=SIGNUP_SALT, max_age=SIGNUP_LINK_MAX_AGE)
    except signing.BadSignature:  # also SignatureExpired
        return None
    return data.get("user") if isinstance(data, dict) else None


def signup_verification_send(*, user) -> None:
    link = _url(reverse("portal:signup-verify", args=[signup_token(user=user)]))
    send_mail(
        "Confirm your email address",
        f"Welcome! Confirm your email address to finish setting up your merchant account:\n\n{link}\n\n"
        "The link works for 3 days. If you did not sign up, ignore this email.",
        None, [user.email],
    )


def signup_existing_send(*, email: str) -> None:
    link = _url(reverse("portal:login"))
    reset = _url(reverse("portal:password-reset"))
    send_mail(
        "You already have an account",
        f"Someone (probably you) tried to sign up with this address, which already has an account.\n\n"
        f"Log in: {link}\nForgot your password? {reset}\n\nIf it was not you, ignore this email.",
        None, [email],
    )


def invitation_send(*, invitation, token: str) -> None:
    link = _url(reverse("portal:invitation-accept", args=[token]))
    inviter = invitation.invited_by.email if invitation.invited_by else "A team member"
    send_mail(
        f"Join {invitation.merchant.name} on the merchant portal",
        f"{inviter} invites you to join {invitation.merchant.name} as {invitation.get_role_display()}.\n\n"
        f"Accept: {link}\n\nThe link works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC.",
        None, [invitation.email],
    )

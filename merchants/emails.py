"""The portal's emails: sign-up verification, team invitations, and the merchant's notifications (payment received,
webhook endpoint failing or disabled, daily summary). Links are absolute (GATEWAY_PUBLIC_URL).

The sign-up link carries a signed, timestamped token (django.core.signing, salted for this use only) naming the
login and its address: it cannot be forged without SECRET_KEY and stops working after SIGNUP_LINK_MAX_AGE."""
from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives, send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from .models import Membership, Role

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


# --- The merchant's own emails (portal settings, "Notifications") -------------------------------------------------
# Each is plain text with a simple HTML alternative, rendered from templates/emails/merchant/ (the HTML autoescaped:
# a business name or URL with markup stays text). They go to the merchant's notification emails, or its owners.

def notification_recipients(*, merchant) -> list[str]:
    """The merchant's notification emails; when it has none, its owners' logins (else the account's email)."""
    if merchant.notification_emails:
        return list(merchant.notification_emails)
    owners = sorted({e for e in Membership.objects.filter(merchant=merchant, role=Role.OWNER, user__is_active=True)
                     .values_list("user__email", flat=True) if e})
    return owners or [merchant.email]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]


def merchant_email_send(*, merchant, subject: str, template: str, context: dict) -> int:
    """Render templates/emails/merchant/<template>.txt and .html and send them to the merchant's recipients."""
    context = {"merchant": merchant, "business_name": merchant.display_name, "portal_url": _url("/portal/"),
               **context}
    text = render_to_string(f"emails/merchant/{template}.txt", context)
    html = render_to_string(f"emails/merchant/{template}.html", context)
    message = EmailMultiAlternatives(_one_line(subject), text, None, notification_recipients(merchant=merchant))
    message.attach_alternative(html, "text/html")
    return message.send()


def payment_succeeded_send(*, merchant, intent_id: str, amount: str, livemode: bool, description: str = "") -> int:
    return merchant_email_send(
        merchant=merchant, subject=f"Payment received: {amount}{'' if livemode else ' (test mode)'}",
        template="payment_succeeded",
        context={"intent_id": intent_id, "amount": amount, "livemode": livemode, "description": description,
                 "link": _url(reverse("portal:payment-detail", args=[intent_id]))},
    )


def webhook_failing_send(*, endpoint, failures: int) -> int:
    return merchant_email_send(
        merchant=endpoint.merchant, subject="Your webhook endpoint is failing", template="webhook_failing",
        context={"endpoint": endpoint, "failures": failures,
                 "link": _url(reverse("portal:webhook-detail", args=[endpoint.id]))},
    )


def webhook_disabled_send(*, endpoint) -> int:
    return merchant_email_send(
        merchant=endpoint.merchant, subject="Webhook endpoint disabled", template="webhook_disabled",
        context={"endpoint": endpoint, "link": _url(reverse("portal:webhook-detail", args=[endpoint.id]))},
    )


def daily_summary_send(*, merchant, day, rows: list[dict]) -> int:
    """`rows`: {"network": display name, "token": "USDT", "count": int, "amount": "12.50", "livemode": bool} per
    mode, network and token."""
    return merchant_email_send(
        merchant=merchant, subject=f"Your payments on {day:%Y-%m-%d}", template="daily_summary",
        context={"day": day, "rows": rows, "total_count": sum(r["count"] for r in rows)},
    )

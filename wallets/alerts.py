"""Telling staff by email (the alerts' third channel beside the log line and the admin row)."""
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

logger = logging.getLogger(__name__)


def staff_emails() -> list[str]:
    return list(get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
                .order_by("email").values_list("email", flat=True).distinct())


def staff_email(*, subject: str, message: str) -> None:
    """Email every active staff member. Call after the commit (transaction.on_commit); a mail error is logged, never
    raised: the row and the log line stand."""
    recipients = staff_emails()
    if not recipients:
        logger.warning("%s: no staff email address to tell", subject)
        return
    try:
        send_mail(subject=f"[gateway] {subject}", message=message, from_email=settings.DEFAULT_FROM_EMAIL,
                  recipient_list=recipients)
    except Exception:
        logger.exception("%s: the email could not be sent", subject)

"""Logins and logouts of the admin and the portal, in the audit trail (connected in AuditConfig.ready). Failed
logins are django-axes' (Axes > Access attempts), not repeated here."""
from django.db import transaction

from .services import audit_record


def login_recorded(sender, request, user, **kwargs):
    with transaction.atomic():
        audit_record(actor=user, action="auth.login", obj=user, request=request)


def logout_recorded(sender, request, user, **kwargs):
    if user is not None:  # a logout without a session says nothing
        with transaction.atomic():
            audit_record(actor=user, action="auth.logout", obj=user, request=request)

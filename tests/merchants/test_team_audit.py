"""The team, sign-up and freezes leave their audit trail: the portal user who invites, revokes, changes a role or
removes a member; the newcomer who accepts; "signup" with the IP; staff and the command for freezes."""
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client

from audit.models import AuditRecord
from audit.verify import audit_chain_verify
from merchants.models import Invitation, Membership, Merchant
from tests.audit.records import records
from tests.merchants.test_portal_team import _link, owner, shop  # noqa: F401 (fixtures)


def test_invite_accept_role_change_remove_and_revoke_are_recorded(shop, owner, django_capture_on_commit_callbacks):
    # the owner invites, the newcomer accepts, the owner changes their role then removes them
    with django_capture_on_commit_callbacks(execute=True):
        owner.post("/portal/team/invitations/", {"email": "dev@example.com", "role": "developer"})
    invitation = Invitation.objects.get()
    Client().post(_link(mail.outbox[0]), {"password1": "a long passphrase 1", "password2": "a long passphrase 1"})
    member = Membership.objects.get(user__username="dev@example.com")
    owner.post(f"/portal/team/members/{member.id}/role", {"role": "finance"})
    owner.post(f"/portal/team/members/{member.id}/remove")
    owner.post("/portal/team/invitations/", {"email": "later@example.com", "role": "viewer"})
    pending = Invitation.objects.get(email="later@example.com")
    owner.post(f"/portal/team/invitations/{pending.id}/revoke")

    by_owner = ("merchant_user", str(shop.user_id))
    create, again = records("invitation.create")
    accept, = records("invitation.accept")
    role, = records("membership.role_change")
    remove, = records("membership.remove")
    revoke, = records("invitation.revoke")
    assert (create.actor_type, create.actor_id) == by_owner and create.object_id == str(invitation.pk)
    assert create.after["email"] == "dev@example.com" and create.after["role"] == "developer"
    assert "token_hash" not in create.after and create.ip == "127.0.0.1"
    assert (accept.actor_type, accept.actor_id) == ("merchant_user", str(member.user_id))
    assert accept.object_id == str(invitation.pk) and accept.after["role"] == "developer"
    assert (role.actor_type, role.actor_id, role.object_id) == (*by_owner, str(member.pk))
    assert (role.before, role.after["role"]) == ({"role": "developer"}, "finance")
    assert (remove.actor_type, remove.actor_id, remove.object_type, remove.object_id) == (
        *by_owner, "merchants.membership", str(member.pk))
    assert remove.before["role"] == "finance"
    assert (revoke.actor_id, revoke.object_id, revoke.before) == (by_owner[1], str(pending.pk), {"revoked_at": None})
    assert again.object_id == str(pending.pk)
    assert audit_chain_verify().ok


def test_a_refused_team_change_records_nothing(shop, owner):
    before = AuditRecord.objects.count()
    mine = Membership.objects.get(user=shop.user)
    assert owner.post(f"/portal/team/members/{mine.id}/role", {"role": "viewer"}).status_code == 400
    assert AuditRecord.objects.count() == before


def test_sign_up_and_email_verification_are_recorded(db, django_capture_on_commit_callbacks):
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/portal/signup/", {"name": "New", "email": "new@example.com", "password1": "a long passphrase 1",
                                        "password2": "a long passphrase 1"}, REMOTE_ADDR="127.0.0.7")
    client.get(_link(mail.outbox[0]))

    merchant = Merchant.objects.get(email="new@example.com")
    user = get_user_model().objects.get(username="new@example.com")
    signup, = records("merchant.create")
    verify, = records("user.email_verify")
    assert (signup.actor_type, signup.actor_id, signup.object_id, signup.ip) == ("system", "signup", merchant.id,
                                                                                 "127.0.0.7")
    assert (verify.actor_type, verify.actor_id, verify.object_id) == ("merchant_user", str(user.pk), str(user.pk))
    assert (verify.before, verify.after) == ({"is_active": False}, {"is_active": True})
    assert audit_chain_verify().ok


def test_freeze_and_unfreeze_by_command_and_by_staff(merchant, admin_client):
    call_command("merchant_freeze", "--merchant", merchant.pk, "--reason", "chargeback wave")
    call_command("merchant_freeze", "--merchant", merchant.pk, "--unfreeze")
    admin_client.post("/admin/merchants/merchant/", {"action": "freeze", "_selected_action": [merchant.pk],
                                                     "reason": "card testing pattern"})

    by_command, by_staff = records("merchant.freeze")
    unfreeze, = records("merchant.unfreeze")
    assert (by_command.actor_id, by_command.object_id, by_command.reason) == (
        "command:merchant_freeze", merchant.pk, "chargeback wave")
    assert unfreeze.actor_id == "command:merchant_freeze --unfreeze"
    assert unfreeze.before["frozen_reason"] == "chargeback wave" and unfreeze.after == {"frozen_at": None}
    assert (by_staff.actor_type, by_staff.reason) == ("staff", "card testing pattern")
    assert audit_chain_verify().ok

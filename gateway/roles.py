"""Staff roles on Django groups: the exact permissions of each (docs/operations.md, "Staff roles"), seeded by the
migration gateway 0001_staff_roles and kept so by `manage.py staff_roles sync`. A superuser (`is_superuser`) has
every permission and needs no group. What each role may do in the admin follows from these permissions and from the
model admins (a read-only fact stays read-only whoever looks); tests/gateway/test_staff_roles.py checks it page by
page and action by action."""

# What every role may read: the operational models (not the staff's own accounts, their second factors or the
# Celery schedule), with the rows their pages show inline (a merchant's team, an outgoing transaction's attempts...).
OPERATIONS_VIEW = [
    "merchants.view_merchant", "merchants.view_membership", "merchants.view_apikey",
    "merchants.view_webhookendpoint", "merchants.view_idempotencyrecord",
    "wallets.view_network", "wallets.view_token", "wallets.view_masterseed", "wallets.view_depositaddress",
    "wallets.view_chaincursor", "wallets.view_transfer", "wallets.view_balancediscrepancy",
    "wallets.view_sendingaddress", "wallets.view_outgoingtransaction", "wallets.view_outgoingattempt",
    "wallets.view_outgoingtransactionevent", "wallets.view_blockedaddress", "wallets.view_issuerblacklistalert",
    "payments.view_paymentintent", "payments.view_paymentoption", "payments.view_event", "payments.view_charge",
    "payments.view_unmatcheddeposit", "payments.view_webhookdelivery", "payments.view_webhookattempt",
    "payments.view_helddeposit",
    "settlements.view_journaltransaction", "settlements.view_ledgerentry", "settlements.view_ledgeraccount",
    "settlements.view_ledgerbalance", "settlements.view_merchantterms", "settlements.view_feeschedule",
    "settlements.view_ledgeradjustment",
    # hot / cold, sweeps, refunds, payouts
    "settlements.view_hotcoldsetting", "settlements.view_coldtransfer", "settlements.view_coldtransferevent",
    "settlements.view_hotwalletalert", "settlements.view_hotwallettopup",
    "settlements.view_sweeppolicy", "settlements.view_sweep", "settlements.view_sweepitem",
    "settlements.view_sweepevent",
    "settlements.view_refund",
    "settlements.view_payout", "settlements.view_payoutaddress", "settlements.view_payoutaddressevent",
    "settlements.view_payoutschedule",
]

ROLES: dict[str, list[str]] = {
    # Reads everything operational; resends webhooks.
    "support": OPERATIONS_VIEW + ["payments.resend_webhookdelivery"],
    # Money: corrections, reconciliation, fees and terms, approvals (maker-checker), the audit trail.
    "finance": OPERATIONS_VIEW + [
        "audit.view_auditrecord",
        "wallets.change_balancediscrepancy",  # "Mark resolved"
        "wallets.rescan_network",
        "payments.cancel_paymentintent", "payments.assign_unmatcheddeposit",
        "settlements.add_ledgeradjustment", "settlements.approve_ledgeradjustment",
        "settlements.add_merchantterms", "settlements.change_merchantterms",
        "settlements.add_feeschedule", "settlements.change_feeschedule",
        "settlements.add_hotcoldsetting", "settlements.change_hotcoldsetting",
        "settlements.add_sweeppolicy", "settlements.change_sweeppolicy",
        # Payouts and refunds (MoneyOutPermissions): the "Approve" / "Reject" actions of payouts and refunds held
        # by a limit (maker-checker, TOTP). approve_refund also guards the refunds staff start or stop: "Refund" on
        # unmatched deposits, "Cancel" on refunds not sent yet.
        "settlements.approve_payout", "settlements.approve_refund",
    ],
    # Access: merchants (active, freeze), their keys and webhook endpoints, second factors, lockouts, the trail.
    "security": OPERATIONS_VIEW + [
        "audit.view_auditrecord",
        "auth.view_user", "auth.view_group",
        "merchants.change_merchant", "merchants.freeze_merchant",
        "merchants.change_apikey",  # name, permissions, expiry (a revocation)
        "merchants.change_webhookendpoint",  # disable / enable
        "merchants.view_encryptedtotpdevice", "merchants.delete_encryptedtotpdevice",  # reset a lost second factor
        "axes.view_accessattempt", "axes.delete_accessattempt",  # see and lift lockouts
        "axes.view_accesslog", "axes.view_accessfailurelog",
        # The address blocklist: add / deactivate, deposits held from blocked senders, issuer blacklist alerts.
        "wallets.add_blockedaddress", "wallets.deactivate_blockedaddress", "payments.decide_helddeposit",
        "wallets.acknowledge_issuerblacklistalert",
    ],
}


def roles_sync(apps=None) -> dict[str, int]:
    """Create the groups and give each exactly its permissions (missing ones are created first: a migration runs
    before Django's post_migrate would create them). Returns {role: number of permissions}."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    apps = apps or global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    counts = {}
    for role, names in ROLES.items():
        wanted = []
        for name in names:
            app_label, codename = name.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is None:
                raise LookupError(f"role {role}: no permission {name}")
            wanted.append(permission)
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(wanted)
        counts[role] = len(wanted)
    return counts

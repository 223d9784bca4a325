"""The portal's permission matrix: what each team role may see and do. The ONE place it is decided.

Every portal view names the permission it needs (`portal_required(permission=...)`, merchants.views); the nav, the
buttons and docs/portal.md's table follow this dict. Where a permission meets a restricted API key's scope
(merchants.authentication.ApiCaller: `{resource: "read" | "write"}`), `API_SCOPES` names that scope, so a role and a
restricted key speak of the same thing with the same words.
"""
from .models import Role

OWNER, ADMIN, DEVELOPER, FINANCE, VIEWER = (Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.FINANCE, Role.VIEWER)
EVERYONE = frozenset(Role)

# permission -> the roles that have it
MATRIX: dict[str, frozenset[str]] = {
    "home.view": EVERYONE,
    "payments.view": EVERYONE,
    "payments.export": frozenset({OWNER, ADMIN, FINANCE, VIEWER}),
    "payments.write": frozenset({OWNER, ADMIN, FINANCE}),  # cancel
    "keys.view": frozenset({OWNER, ADMIN, DEVELOPER}),
    "keys.write": frozenset({OWNER, ADMIN, DEVELOPER}),  # create, roll, revoke
    "webhooks.view": frozenset({OWNER, ADMIN, DEVELOPER}),
    "webhooks.write": frozenset({OWNER, ADMIN, DEVELOPER}),
    "events.view": frozenset({OWNER, ADMIN, DEVELOPER}),
    "settings.view": frozenset({OWNER, ADMIN, DEVELOPER, FINANCE, VIEWER}),
    "settings.write": frozenset({OWNER, ADMIN}),
    # Money out (settlements' pages). Like Stripe's roles: the view-only role reads the balance and the payouts, a
    # developer (who builds the integration) does not; money leaves by an owner, an admin or finance; where it may
    # go (the payout addresses, the automatic schedule) only an owner or finance decides.
    "balance.view": frozenset({OWNER, ADMIN, FINANCE, VIEWER}),  # balance, balance transactions, payouts
    "balance.export": frozenset({OWNER, ADMIN, FINANCE, VIEWER}),  # balance transactions CSV
    "payouts.write": frozenset({OWNER, ADMIN, FINANCE}),  # create, cancel
    "payout_addresses.write": frozenset({OWNER, FINANCE}),  # add, remove, automatic schedule
    "refunds.view": EVERYONE,  # refunds, unmatched deposits
    "refunds.write": frozenset({OWNER, ADMIN, FINANCE}),  # refund a payment or a deposit, cancel a refund
    "team.view": EVERYONE,
    "team.write": frozenset({OWNER, ADMIN}),  # invite, change roles, remove (owners only touch owners)
}

# permission -> (restricted key resource, access): the same grant where the portal and the API meet.
API_SCOPES: dict[str, tuple[str, str]] = {
    "payments.view": ("payment_intents", "read"),
    "payments.write": ("payment_intents", "write"),
    "webhooks.view": ("webhook_endpoints", "read"),
    "webhooks.write": ("webhook_endpoints", "write"),
    "events.view": ("events", "read"),
    "refunds.view": ("refunds", "read"),
    "refunds.write": ("refunds", "write"),
}

# The permission of a portal view that names none.
DEFAULT = "home.view"


def permission_check(name: str) -> str:
    """The name itself if the matrix knows it; a typo fails when the view module is imported, not at request time."""
    if name not in MATRIX:
        raise LookupError(f"Unknown portal permission {name!r}: add it to merchants.permissions.MATRIX")
    return name


def role_can(role: str, permission: str) -> bool:
    return role in MATRIX[permission_check(permission)]


def role_permissions(role: str) -> frozenset[str]:
    return frozenset(name for name, roles in MATRIX.items() if role in roles)


# Who may grant which role: an owner any, an admin any but owner.
def role_grantable_by(role: str) -> list[str]:
    if role == OWNER:
        return list(Role.values)
    if role == ADMIN:
        return [r for r in Role.values if r != OWNER]
    return []

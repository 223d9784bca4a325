"""Who may open a portal page: a session verified by TOTP and a role with the permission each page names here
(merchants.portal.portal_required, merchants.permissions.MATRIX). `portal_page("payments.view")` records the permission on the view and
in PERMISSIONS (url name -> permission is then one lookup away), so the permission matrix plugs in at this one
place."""
from django.http import Http404

from gateway.ids import id_is_valid
from merchants.portal import portal_livemode, portal_merchant, portal_required

PERMISSIONS: dict[str, str] = {}  # view's qualified name -> the permission it needs


def portal_page(permission: str):
    def decorate(view):
        guarded = portal_required(view, permission=permission)
        PERMISSIONS[f"{view.__module__}.{view.__name__}"] = permission
        return guarded

    return decorate


def portal_scope(request):
    """The merchant of the session and the mode the portal shows: every query of these pages is filtered by both."""
    return portal_merchant(request), portal_livemode(request)


def found_or_404(object_id: str, prefix: str, lookup):
    """`lookup(object_id)` (a query scoped to the session's merchant and mode), or a 404 when the id has not the
    shape of a `prefix`_ id or names nothing of theirs: another merchant's id looks exactly like an unknown one."""
    if not id_is_valid(object_id, prefix):
        raise Http404
    found = lookup(object_id)
    if found is None:
        raise Http404
    return found

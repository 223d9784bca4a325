from django.contrib import admin

from gateway.admin_site import FactAdmin

from .models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(FactAdmin):
    """The audit trail, read-only (the database refuses changes too); `manage.py audit verify` checks the chain."""

    list_display = ("seq", "created", "actor_type", "actor_label", "action", "object_type", "object_id", "reason",
                    "ip", "request_id")
    list_filter = ("actor_type", "action", "object_type", "created")
    search_fields = ("=seq", "actor_id", "actor_label", "action", "object_id", "reason", "request_id", "ip")
    date_hierarchy = "created"
    fields = ("seq", "created", "actor_type", "actor_id", "actor_label", "action", "object_type", "object_id",
              "before", "after", "reason", "ip", "request_id", "prev_hash", "hash")
    readonly_fields = fields
    show_full_result_count = False  # no COUNT(*) over the whole trail on every page

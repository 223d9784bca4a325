"""The audit trail: append-only records chained by SHA-256 (each carries the hash of the one before), one gapless
sequence serialised by a single head row locked FOR UPDATE. PostgreSQL refuses UPDATE and DELETE of a record
(migration 0001); `manage.py audit verify` walks the chain (audit.verify)."""
from django.db import models
from django.db.models import Q

GENESIS_HASH = "0" * 64


class AuditRecord(models.Model):
    class ActorType(models.TextChoices):
        STAFF = "staff"
        MERCHANT_USER = "merchant_user"
        API_KEY = "api_key"
        SYSTEM = "system"  # a management command, a task, a migration

    seq = models.BigIntegerField(primary_key=True, help_text="1, 2, 3 ... without gaps")
    created = models.DateTimeField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=100, blank=True, help_text="user pk, key_..., command:<name>")
    actor_label = models.CharField(max_length=200, blank=True, help_text="user name, redacted key, OS user")
    action = models.CharField(max_length=100, help_text="<entity>.<verb>, admin.change, command.<name> ...")
    object_type = models.CharField(max_length=100, blank=True, help_text="app_label.model")
    object_id = models.CharField(max_length=100, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    ip = models.CharField(max_length=45, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            models.Index(fields=["actor_type", "actor_id"], name="audit_actor"),
            models.Index(fields=["action"], name="audit_action"),
            models.Index(fields=["created"], name="audit_created"),
        ]
        constraints = [models.CheckConstraint(condition=Q(seq__gte=1), name="audit_seq_positive")]

    def __str__(self):
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_id}"


class AuditHead(models.Model):
    """The one row every append locks: the last sequence number and hash (also what tells a truncated tail)."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="audit_head_single_row")]

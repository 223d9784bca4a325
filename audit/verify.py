"""Walk the audit chain and name the first record that breaks it (`manage.py audit verify`)."""
from dataclasses import dataclass

from .models import GENESIS_HASH, AuditHead, AuditRecord
from .services import record_hash


@dataclass(frozen=True)
class ChainReport:
    records: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None  # the first bad record (None: the chain is whole)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_seq is None


def audit_chain_verify(*, chunk_size: int = 2000, last: int | None = None) -> ChainReport:
    """Sequence without gaps from 1; each record's hash recomputed from its fields; each record's prev_hash equal to
    the hash of the record before; the head equal to the last record. A changed field shows as a hash mismatch, a
    deleted record as a gap (or a head ahead of the last record), a record inserted or replaced as a broken link.

    `last`: only the head's last N records (a quick check, `manage.py check_live`): the walk starts from the stored
    hash of the record before them, which it takes on trust; `records` then counts the records checked."""
    expected, previous, count = 1, GENESIS_HASH, 0
    head = AuditHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)

    def bad(seq, problem):
        return ChainReport(records=count, head_seq=head_seq, head_hash=head_hash, bad_seq=seq, problem=problem)

    records = AuditRecord.objects.order_by("seq")
    if last is not None and head_seq > last:
        expected = head_seq - last + 1
        anchor = AuditRecord.objects.filter(seq=expected - 1).values_list("hash", flat=True).first()
        if anchor is None:
            return bad(expected - 1, f"record #{expected - 1} is missing: a record was deleted")
        previous, records = anchor, records.filter(seq__gte=expected)
    first = expected
    for record in records.iterator(chunk_size=chunk_size):
        if record.seq != expected:
            return bad(expected, f"record #{expected} is missing (the next one is #{record.seq}): a record was deleted")
        if record_hash(record) != record.hash:
            return bad(record.seq, f"record #{record.seq} does not match its hash: a field was changed")
        if record.prev_hash != previous:
            return bad(record.seq, f"record #{record.seq} does not follow the record before it (prev_hash "
                                   f"{record.prev_hash[:12]}... is not {previous[:12]}...): a record was inserted "
                                   "or replaced before it")
        previous, expected, count = record.hash, expected + 1, count + 1
    if head_seq != first - 1 + count or head_hash != previous:
        end = first - 1 + count
        return bad(end + 1, f"the head says #{head_seq} ({head_hash[:12]}...) but the chain ends at #{end}: "
                              "records at its end were deleted (or the head was changed)")
    return ChainReport(records=count, head_seq=head_seq, head_hash=head_hash)

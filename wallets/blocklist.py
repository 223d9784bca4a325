"""The address blocklist (docs/operations.md, "Address blocklist"): every write to `BlockedAddress`, and the readers
of the files it is imported from.

    blocked_address_add          one address by hand (admin, `manage.py blocklist add`), audited
    blocked_address_deactivate   an address no longer blocked, with a reason, audited
    blocklist_import             the entries of a CSV or of OFAC's SDN XML: new addresses added, known ones left
                                 alone (idempotent), one audit record with the counts, or nothing with `dry_run`
    csv_entries / ofac_entries   the files read into `Entry` rows (no network: the operator downloads the file)

It lives in `wallets`, the lowest app that knows chain addresses: `payments` checks the senders of incoming transfers
and `settlements` the destinations of refunds and payouts, and both import `wallets` (never the other way round).
"""
import csv
import hashlib
import io
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record, model_snapshot
from gateway.errors import DomainError

from .models import BlockedAddress

logger = logging.getLogger(__name__)

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
OFAC_FEATURE_PREFIX = "Digital Currency Address - "
FIELDS = ["address", "source", "reason", "list_reference", "active", "added_by"]


class BlocklistError(DomainError):
    pass


def address_normalise(address: str) -> str | None:
    """The address as the gateway stores addresses (lower-case 0x hex), or None when it is not an EVM address."""
    value = (address or "").strip()
    return value.lower() if _EVM_ADDRESS.match(value) else None


def _actor_name(actor) -> str:
    if getattr(actor, "username", ""):
        return actor.username
    if isinstance(getattr(actor, "id", None), str):  # audit.actors.Actor: "command:blocklist import"
        return actor.id
    return str(actor or "system")


# --- One address ---------------------------------------------------------------------------------------------------


@transaction.atomic
def blocked_address_add(*, address: str, reason: str, actor, source: str = BlockedAddress.Source.MANUAL,
                        list_reference: str = "", request=None) -> BlockedAddress:
    """Block `address` (active again if it was deactivated), with its audit record. Refused: not an EVM address, no
    reason. Already active: returned unchanged."""
    normalised = address_normalise(address)
    if normalised is None:
        raise BlocklistError(code="parameter_invalid", param="address",
                             message="An address is 0x followed by 40 hexadecimal digits.")
    reason = (reason or "").strip()
    if not reason:
        raise BlocklistError(code="parameter_missing", param="reason", message="Say why this address is blocked.")
    row = BlockedAddress.objects.select_for_update().filter(address=normalised).first()
    before = model_snapshot(row, FIELDS) if row else None
    if row is not None and row.active:
        return row
    if row is None:
        row = BlockedAddress.objects.create(address=normalised, source=source, reason=reason,
                                            list_reference=list_reference, added_by=_actor_name(actor))
    else:
        row.active, row.source, row.reason, row.list_reference = True, source, reason, list_reference
        row.added_by, row.added_at = _actor_name(actor), timezone.now()
        row.deactivated_at, row.deactivated_by, row.deactivation_reason = None, "", ""
        row.save()
    logger.warning("blocklist: %s blocked by %s (%s)", normalised, row.added_by, reason)
    audit_record(actor=actor, action="blocked_address.add", obj=row, before=before, after=model_snapshot(row, FIELDS),
                 reason=reason, request=request)
    return row


@transaction.atomic
def blocked_address_deactivate(*, blocked: BlockedAddress, actor, reason: str, request=None) -> BlockedAddress:
    """Unblock an address (the row stays, inactive, with who and why). Twice: nothing more."""
    reason = (reason or "").strip()
    if not reason:
        raise BlocklistError(code="parameter_missing", param="reason", message="Say why this address is unblocked.")
    row = BlockedAddress.objects.select_for_update().get(pk=blocked.pk)
    if not row.active:
        return row
    before = model_snapshot(row, FIELDS)
    row.active, row.deactivated_at = False, timezone.now()
    row.deactivated_by, row.deactivation_reason = _actor_name(actor), reason
    row.save(update_fields=["active", "deactivated_at", "deactivated_by", "deactivation_reason"])
    logger.warning("blocklist: %s unblocked by %s (%s)", row.address, row.deactivated_by, reason)
    audit_record(actor=actor, action="blocked_address.deactivate", obj=row, before=before,
                 after=model_snapshot(row, FIELDS), reason=reason, request=request)
    return row


# --- Files ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    address: str  # lower-case
    reason: str
    list_reference: str = ""


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # why some rows were not taken: {"not_evm:XBT": 3, ...}


def csv_entries(text: str) -> Parsed:
    """Rows of a CSV with the columns `address,reason` (a header row of those names, or none). A row whose address
    is not an EVM address is counted in `skipped`, never taken."""
    parsed = Parsed()
    reader = csv.reader(io.StringIO(text))
    for number, row in enumerate(reader, start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1 and row[0].strip().lower() == "address":
            continue
        address = address_normalise(row[0])
        reason = row[1].strip() if len(row) > 1 else ""
        if address is None:
            parsed.skipped["not_an_evm_address"] += 1
            continue
        if not reason:
            parsed.skipped["no_reason"] += 1
            continue
        parsed.entries.append(Entry(address=address, reason=reason[:2000], list_reference=f"csv line {number}"))
    return parsed


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def ofac_entries(data: bytes) -> Parsed:
    """The digital currency addresses of OFAC's SDN list that are EVM addresses (0x + 40 hex: ETH, USDT, USDC, BSC,
    ARB, ETC ... on EVM chains; the Bitcoin, Tron, Monero ... ones are counted as skipped by symbol), from either
    file OFAC publishes:

    - `sdn.xml`: `<sdnEntry><uid/><lastName/>...<programList><program/></programList><idList><id><uid/>
      <idType>Digital Currency Address - ETH</idType><idNumber>0x...</idNumber></id></idList></sdnEntry>`
    - `sdn_advanced.xml`: `<FeatureType ID="345">Digital Currency Address - ETH</FeatureType>` in the reference
      value sets, then `<DistinctParty FixedRef="uid"><Profile>...<Feature FeatureTypeID="345"><FeatureVersion>
      <VersionDetail>0x...</VersionDetail>`.

    The reference kept is `SDN <uid> <symbol>`. Namespaces are ignored (OFAC has changed them). Python's expat
    parser resolves no external entity and refuses entity expansion bombs."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise BlocklistError(code="file_invalid", param="file", message=f"Not an XML file: {exc}") from exc
    parsed = Parsed()
    if _local(root.tag) == "sdnList":
        for entry in root:
            if _local(entry.tag) != "sdnEntry":
                continue
            uid = _child_text(entry, "uid")
            name = " ".join(filter(None, [_child_text(entry, "firstName"), _child_text(entry, "lastName")]))
            programs = [(p.text or "").strip() for p in entry.iter() if _local(p.tag) == "program"]
            for ident in entry.iter():
                if _local(ident.tag) != "id":
                    continue
                id_type = _child_text(ident, "idType")
                if id_type.startswith(OFAC_FEATURE_PREFIX):
                    _take(parsed, value=_child_text(ident, "idNumber"), symbol=id_type[len(OFAC_FEATURE_PREFIX):],
                          uid=uid, name=name, programs=programs)
        return parsed
    if _local(root.tag) == "Sanctions":
        feature_types = {
            element.get("ID"): (element.text or "").strip()
            for element in root.iter() if _local(element.tag) == "FeatureType"
            and (element.text or "").strip().startswith(OFAC_FEATURE_PREFIX)
        }
        for party in root.iter():
            if _local(party.tag) != "DistinctParty":
                continue
            uid = party.get("FixedRef", "")
            names = [(e.text or "").strip() for e in party.iter() if _local(e.tag) == "NamePartValue"]
            for feature in party.iter():
                if _local(feature.tag) != "Feature" or feature.get("FeatureTypeID") not in feature_types:
                    continue
                symbol = feature_types[feature.get("FeatureTypeID")][len(OFAC_FEATURE_PREFIX):]
                for detail in feature.iter():
                    if _local(detail.tag) == "VersionDetail":
                        _take(parsed, value=(detail.text or "").strip(), symbol=symbol, uid=uid,
                              name=" ".join(names[:1]), programs=[])
        return parsed
    raise BlocklistError(code="file_invalid", param="file",
                         message=f"Not an OFAC SDN file: the root element is <{_local(root.tag)}>, expected <sdnList> "
                                 f"(sdn.xml) or <Sanctions> (sdn_advanced.xml).")


def _take(parsed: Parsed, *, value: str, symbol: str, uid: str, name: str, programs: list[str]) -> None:
    address = address_normalise(value)
    if address is None:
        parsed.skipped[f"not_evm:{symbol.strip()}"] += 1
        return
    reason = f"OFAC SDN: {name or 'uid ' + uid}" + (f" [{', '.join(programs)}]" if programs else "")
    parsed.entries.append(Entry(address=address, reason=reason[:2000],
                                list_reference=f"SDN {uid} {symbol.strip()}"[:200]))


# --- Import --------------------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    source: str
    file_sha256: str
    read: int = 0  # EVM entries in the file (an address listed twice counts once)
    added: int = 0
    already_blocked: int = 0
    deactivated_kept: int = 0  # deactivated by staff: an import does not block them again (add them by hand)
    skipped: dict = field(default_factory=dict)
    dry_run: bool = False
    added_addresses: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"source": self.source, "file_sha256": self.file_sha256, "read": self.read, "added": self.added,
                "already_blocked": self.already_blocked, "deactivated_kept": self.deactivated_kept,
                "skipped": dict(sorted(self.skipped.items())), "dry_run": self.dry_run}


def blocklist_import(*, source: str, data: bytes, actor, dry_run: bool = False) -> ImportResult:
    """Import a CSV (`source="csv"`) or an OFAC SDN XML (`"ofac"`): addresses not on the list yet are added (source,
    reason, list reference, added_by the actor); addresses already there, active or deactivated, are left as they
    are. One transaction with one audit record (`blocklist.import`: the file's SHA-256 and the counts); `dry_run`
    counts the same and writes nothing. Running it again on the same file adds nothing."""
    if source == BlockedAddress.Source.CSV:
        try:
            parsed = csv_entries(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise BlocklistError(code="file_invalid", param="file", message="The CSV is not UTF-8.") from exc
    elif source == BlockedAddress.Source.OFAC:
        parsed = ofac_entries(data)
    else:
        raise BlocklistError(code="parameter_invalid", param="source", message="source is csv or ofac.")
    unique: dict[str, Entry] = {}
    for entry in parsed.entries:
        unique.setdefault(entry.address, entry)
    result = ImportResult(source=source, file_sha256=hashlib.sha256(data).hexdigest(), read=len(unique),
                          skipped=dict(parsed.skipped), dry_run=dry_run)
    with transaction.atomic():
        known = dict(BlockedAddress.objects.select_for_update().filter(address__in=list(unique))
                     .values_list("address", "active"))
        new = [entry for address, entry in unique.items() if address not in known]
        result.already_blocked = sum(1 for active in known.values() if active)
        result.deactivated_kept = sum(1 for active in known.values() if not active)
        result.added = len(new)
        result.added_addresses = [entry.address for entry in new]
        if dry_run:
            return result
        name = _actor_name(actor)
        BlockedAddress.objects.bulk_create(
            [BlockedAddress(address=e.address, source=source, reason=e.reason, list_reference=e.list_reference,
                            added_by=name) for e in new],
            ignore_conflicts=True)  # added by hand at the same moment: that row stands
        if new:
            logger.warning("blocklist: %d addresses added from a %s file (%s)", len(new), source, result.file_sha256)
        audit_record(actor=actor, action="blocklist.import", obj=None,
                     after={**result.as_json(), "added_addresses": result.added_addresses[:1000]},
                     reason=f"{source} import")
    return result

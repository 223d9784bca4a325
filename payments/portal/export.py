"""CSV export of a filtered payments list: streamed in chunks of rows read by keyset (memory stays flat however
many rows), every cell guarded against spreadsheet formula injection. `csv_response`, `csv_writer` and `cell` are
the portal's CSV for every list (settlements' balance transactions use them too)."""
import csv

from django.db.models import TextField
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from ..pricing import FIAT_EXPONENTS
from .selectors import keyset_chunks

# A cell a spreadsheet would read as a formula (or that hides one behind a tab / carriage return) starts with a
# quote instead (OWASP's advice for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

HEADER = ["id", "created_utc", "status", "amount", "currency", "amount_received", "description", "receipt_email",
          "network", "token", "transaction_hash", "deposit_address", "canceled_at_utc", "cancellation_reason",
          "metadata"]
FIELDS = ["status", "amount", "currency", "amount_received", "description", "receipt_email",
          "latest_charge__transfer__network__api_name", "latest_charge__transfer__token__currency",
          "latest_charge__transfer__tx_hash", "deposit_address__address", "canceled_utc", "cancellation_reason",
          "metadata_json", "created_utc", "id"]


def _utc_text(column: str) -> RawSQL:
    """A timestamp as PostgreSQL writes it in UTC to the microsecond (ISO 8601 with its offset): no parsing into a
    datetime and formatting again in Python for every row; the export's keyset takes it back as it is."""
    return RawSQL(f"to_char(payments_paymentintent.{column} AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')", [], output_field=TextField())


def cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _decimal(amount_minor: int, currency: str) -> str:
    """Minor units as a decimal string (1234 usd -> "12.34"), integer arithmetic only."""
    exponent = FIAT_EXPONENTS.get(currency, 2)
    if exponent == 2:
        return f"{amount_minor // 100}.{amount_minor % 100:02d}"
    whole, frac = divmod(amount_minor, 10 ** exponent)
    return f"{whole}.{frac:0{exponent}d}" if exponent else str(whole)


def _time(value: str | None) -> str:
    """"2026-01-02T03:04:05.123456+00:00" -> "2026-01-02T03:04:05Z"."""
    return value[:19] + "Z" if value else ""


class _Line:
    """csv.writer's file: hands back what it is given."""

    def write(self, value):
        return value


def csv_writer():
    """A csv.writer whose `writerow` returns the line instead of writing it (for a streamed response)."""
    return csv.writer(_Line())


def csv_response(lines, *, name: str, livemode: bool) -> StreamingHttpResponse:
    """`lines` (an iterator of CSV text) streamed as an attachment `<name>-<mode>-<UTC time>.csv`, never cached."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    mode = "live" if livemode else "test"
    response["Content-Disposition"] = f'attachment; filename="{name}-{mode}-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def csv_rows(qs):
    """The lines of the CSV (header first) for the intents of `qs`, newest first."""
    writer = csv_writer()
    yield writer.writerow(HEADER)
    # The metadata as PostgreSQL writes jsonb as text: valid JSON, no parse and dump in Python for every row.
    qs = qs.annotate(metadata_json=Cast("metadata", TextField()), created_utc=_utc_text("created"),
                     canceled_utc=_utc_text("canceled_at"))
    for chunk in keyset_chunks(qs, fields=FIELDS):
        lines = []
        for (status, amount, currency, received, description, email, network, token, tx_hash, address,
             canceled_at, reason, metadata, created, pk) in chunk:
            lines.append(writer.writerow([
                pk, _time(created), status, _decimal(amount, currency), currency,
                _decimal(received, currency), cell(description), cell(email), network or "", token or "",
                tx_hash or "", address or "", _time(canceled_at), reason,
                cell(metadata),
            ]))
        yield "".join(lines)

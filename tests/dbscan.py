"""Reading every raw row of every table, to prove that a secret is stored nowhere in clear."""
from django.db import connection


def database_dump() -> dict[str, bytes]:
    """Every row of every table: each cell as raw bytes, plus the row cast to text by PostgreSQL (bytea as hex)."""
    dump = {}
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            chunks = []
            cursor.execute(f"SELECT * FROM {qn(table)}")
            for row in cursor.fetchall():
                for cell in row:
                    chunks.append(bytes(cell) if isinstance(cell, (bytes, memoryview)) else str(cell).encode())
            cursor.execute(f"SELECT t::text FROM {qn(table)} AS t")
            chunks.extend(text.encode() for (text,) in cursor.fetchall())
            dump[table] = b"\n".join(chunks)
    return dump


def leaks(haystack: bytes, needles: dict[str, bytes]) -> list[str]:
    """The names of the needles found in the haystack, in any letter case."""
    lowered = haystack.lower()
    return [name for name, needle in needles.items() if needle in haystack or needle.lower() in lowered]

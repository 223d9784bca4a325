"""Plain INSERT statements made from a model's own fields, for the hot write path (POST /v1/payment_intents).

`Model.save()` and `bulk_create()` cost a few hundred microseconds of Python each on a small server, and each is a
round-trip of its own. `insert_sql` gives the same row with a fraction of that work, and lets a service send several
inserts as one statement (data-modifying CTEs: `WITH a AS (INSERT ...) INSERT ...`). Each value goes through its
field exactly as in `save()`: `pre_save` (auto_now_add, auto_now) then `get_db_prep_save`; a primary key that the
database generates is left out (ask for it with `RETURNING`). No signals are sent (the project uses none).
"""
import functools

from django.db import connection


@functools.cache
def _insert_fields(model, with_pk: bool = False) -> tuple:
    fields = tuple(
        f for f in model._meta.concrete_fields
        if f not in model._meta.db_returning_fields or (with_pk and f is model._meta.pk)
    )
    if any(hasattr(f, "get_placeholder") for f in fields):
        raise TypeError(f"{model.__name__} has a field with a custom placeholder: use the ORM")
    return fields


def insert_sql(model, objs: list, *, with_pk: bool = False) -> tuple[str, list]:
    """`INSERT INTO <table> (<columns>) VALUES (...), (...)` of unsaved instances, and its parameters.

    `with_pk`: the instances already hold their generated primary key (drawn with `next_pk_sql`), and it is written
    too, so that other inserts of the same statement can refer to the row."""
    fields = _insert_fields(model, with_pk)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]
    return _insert_values_text(model, len(objs), with_pk), params


@functools.cache
def _insert_values_text(model, rows: int, with_pk: bool = False) -> str:
    qn = connection.ops.quote_name
    fields = _insert_fields(model, with_pk)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * rows)}"
    )


def insert_unnest_sql(model, objs: list) -> tuple[str, list]:
    """The same rows as `insert_sql`, as `INSERT ... SELECT * FROM unnest(<one array per column>)`: one parameter per
    column whatever the number of rows, so the statement text (and its prepared plan) is the same for 1 or 12 rows.
    For short scalar columns (ids, numbers); long text is better sent row by row (`insert_sql`)."""
    fields = _insert_fields(model)
    columns = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs] for f in fields]
    return _insert_unnest_text(model), columns


@functools.cache
def _insert_unnest_text(model) -> str:
    qn = connection.ops.quote_name
    fields = _insert_fields(model)
    arrays = ", ".join(f"%s::{f.db_type(connection).split('(')[0]}[]" for f in fields)
    return (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
        f"SELECT * FROM unnest({arrays})"
    )


def next_pk_sql(model) -> str:
    """An SQL expression drawing the next generated primary key of `model` (to write it with `with_pk`)."""
    table, column = model._meta.db_table, model._meta.pk.column
    return f"nextval(pg_get_serial_sequence('{connection.ops.quote_name(table)}', '{column}'))"


def returning_pk(model) -> str:
    return f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"


def mark_saved(*objs) -> None:
    """What save() does to an instance once its row is written: later saves update it."""
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias

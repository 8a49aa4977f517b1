"""Writing and finding many rows at once: what a batch of a statement or of the inbox needs.

Django's `__in`, `bulk_update` and multi-row INSERT send one parameter per value (or build a
CASE with a branch per row); for the thousands of rows of a batch these helpers send one array
per column, or COPY, on PostgreSQL, and fall back to Django's own on SQLite (the embedded
default of `make run`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import Field, JSONField, Lookup, Model
from django.db.models.base import ModelState

ModelT = TypeVar("ModelT", bound=Model)


class AnyOf(Lookup):  # type: ignore[type-arg]
    """`column = ANY(%s)`, the list as one array parameter, where `__in` sends one parameter per
    value: thousands for a batch, each converted, quoted and parsed. `IN (...)` off PostgreSQL.

    Usage: `Model.objects.filter(AnyOf(F("field"), values))`.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        lhs, params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            raise EmptyResultSet
        field = self.lhs.output_field
        prepped = [field.get_db_prep_value(value, connection) for value in values]
        return f"{lhs} IN ({', '.join(['%s'] * len(prepped))})", (*params, *prepped)

    def as_postgresql(self, compiler: Any, connection: Any) -> Any:
        lhs, params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            raise EmptyResultSet
        kind = self.lhs.output_field.db_type(connection)
        return f"{lhs} = ANY(%s::{kind}[])", (*params, pg_array(values))


def _pg_text(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# How each kind of value is written in an array literal; anything else is quoted as text.
_PG_ELEMENT: dict[type, Any] = {
    type(None): lambda value: "NULL",
    bool: lambda value: "t" if value else "f",
    int: str,
    uuid.UUID: str,
    datetime: datetime.isoformat,  # aware: '2026-11-27T02:15:00+00:00'
    str: _pg_text,
}


def pg_array(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal (`{1,NULL,"a \\"b\\""}`) of ints, bools, text, UUIDs and aware
    datetimes, to send as one text parameter cast to the column's array type.

    A Python list as a parameter is converted element by element by the driver's generic
    adapters, a few microseconds each: for the 2,000-row arrays of a batch that costs more than
    PostgreSQL takes to use them.
    """
    element = _PG_ELEMENT.get
    return "{" + ",".join([element(type(value), _pg_text)(value) for value in values]) + "}"


def _columns(model: type[Model], names: Sequence[str]) -> list[Field]:
    return [cast(Field, model._meta.get_field(name)) for name in names]


def bulk_update_rows(
    model: type[Model], fields: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Set `fields` of many rows in one UPDATE; each row is (pk, *values), values as Python has
    them (str, int, bool, aware datetime, UUID, None: not JSON).

    On PostgreSQL the values travel as one array per column (`UPDATE ... FROM unnest(...)`):
    Django's `bulk_update` builds a CASE with a branch per row, which PostgreSQL evaluates for
    every row, so its cost grows with the square of the batch. Elsewhere (the embedded SQLite of
    `make run`) `bulk_update` it is.
    """
    if not rows:
        return
    columns = _columns(model, fields)
    if connection.vendor != "postgresql":
        instances = []
        for pk, *values in rows:
            instance = model(pk=pk)
            for column, value in zip(columns, values, strict=True):
                setattr(instance, column.attname, value)
            instances.append(instance)
        model._default_manager.bulk_update(instances, list(fields), batch_size=500)
        return
    meta = model._meta
    pk = cast(Field, meta.pk)
    quote = connection.ops.quote_name
    names = [quote(str(pk.column)), *(quote(str(column.column)) for column in columns)]
    types = [pk.rel_db_type(connection), *(column.db_type(connection) for column in columns)]
    arrays = [pg_array(values) for values in zip(*rows, strict=True)]
    table = quote(meta.db_table)
    assignments = ", ".join(f"{name} = v.{name}" for name in names[1:])
    unnest = ", ".join(f"%s::{kind}[]" for kind in types)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} FROM unnest({unnest}) "  # noqa: S608 - names only
            f"AS v({', '.join(names)}) WHERE {table}.{names[0]} = v.{names[0]}",
            arrays,
        )


def bulk_insert_rows(
    model: type[Model], fields: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT many rows of `fields` (foreign keys as ids, JSON as Python values).

    `COPY ... FROM STDIN` on PostgreSQL: a row costs a fraction of what a row of a multi-row
    INSERT with thousands of parameters costs. `bulk_create` elsewhere.
    """
    if not rows:
        return
    columns = _columns(model, fields)
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(
            [
                model(**{column.attname: value for column, value in zip(columns, row, strict=True)})
                for row in rows
            ],
            batch_size=500,
        )
        return
    # JSON goes as its text, each column's encoder made once (`json.dumps` makes one per value).
    encoders = [
        (i, (cast(JSONField, column).encoder or json.JSONEncoder)().encode)
        for i, column in enumerate(columns)
        if isinstance(column, JSONField)
    ]
    quote = connection.ops.quote_name
    names = ", ".join(quote(str(column.column)) for column in columns)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            values = list(row)
            for i, encode in encoders:
                values[i] = encode(values[i])
            copy.write_row(values)


def instances(
    model: type[ModelT], fields: Sequence[str], rows: Iterable[Sequence[Any]]
) -> list[ModelT]:
    """Model instances of rows read with `values_list(*fields)`, as `.only(*fields)` would
    give them (a field left out loads when first read), built without `Model.__init__`: its
    signals and per-field work cost ten times the row for the thousands of a batch. For models
    nothing listens to at init (no pre_init/post_init receivers in this project)."""
    names = [cast(Field, model._meta.get_field(name)).attname for name in fields]
    db = connection.alias
    made = []
    new = model.__new__
    for row in rows:
        instance = new(model)
        instance.__dict__.update(zip(names, row, strict=True))
        state = ModelState()
        state.adding, state.db = False, db
        instance._state = state
        made.append(instance)
    return made


def reserve_ids(model: type[Model], count: int) -> list[int]:
    """`count` new primary keys of `model`, ascending, for rows inserted later in the
    transaction (rows that others must name before they exist, as a transfer names its inbox
    message). A rolled-back transaction leaves a gap in the ids, nothing else."""
    if count <= 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, cast(Field, model._meta.pk).column, count],
            )
            return sorted(row[0] for row in cursor.fetchall())
        # SQLite (AUTOINCREMENT): new rows take ids above sqlite_sequence's, so moving it
        # reserves the ids between; the UPDATE takes the database's write lock at once.
        cursor.execute("UPDATE sqlite_sequence SET seq = seq + %s WHERE name = %s", [count, table])
        if cursor.rowcount == 0:
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")  # noqa: S608 - a name
            cursor.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)",
                [table, cursor.fetchone()[0] + count],
            )
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        last = cursor.fetchone()[0]
    return list(range(last - count + 1, last + 1))


def insert_new(
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    """INSERT rows of `fields` (foreign keys by attname, as "message_id"), skipping those that
    clash on the `conflict` columns; returns the `returning` columns of the rows actually
    inserted. The model's other fields take their defaults. Must run inside a transaction."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        return _pg_copy_insert(model, fields, rows, conflict=conflict, returning=returning)
    # The embedded SQLite database of `make run`: statements there are small.
    result = []
    for row in rows:
        try:
            with transaction.atomic():
                created = model._default_manager.create(**dict(zip(fields, row, strict=True)))
        except IntegrityError:
            continue
        result.append(tuple(getattr(created, name) for name in returning))
    return result


def _pg_copy_insert(
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    # COPY into a scratch table, then one INSERT ... ON CONFLICT DO NOTHING RETURNING: a
    # hundred times cheaper per row than a parameterised multi-row INSERT, whose thousands of
    # parameters cost more to send than the rows themselves.
    from psycopg.types.json import Json, Jsonb

    given = [cast(Field, model._meta.get_field(name)) for name in fields]
    named = {field.attname for field in given}
    others = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and field.attname not in named
    ]
    defaults = []
    for field in others:
        value = field.get_db_prep_save(field.get_default(), connection)
        # Dumped once here rather than once per row by COPY.
        defaults.append(json.dumps(value.obj) if isinstance(value, Json | Jsonb) else value)
    extra = tuple(defaults)
    quote = connection.ops.quote_name

    def column_list(names: Iterable[str]) -> str:
        # get_field knows attnames too ("message_id"); every name here is a concrete field.
        return ", ".join(
            quote(str(cast(Field, model._meta.get_field(name)).column)) for name in names
        )

    table = quote(model._meta.db_table)
    scratch = quote(f"bulk_{model._meta.db_table}")
    columns = column_list([*(field.name for field in given), *(field.name for field in others)])
    on, back = column_list(conflict), column_list(returning)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS "  # noqa: S608 - names, not data
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {scratch} ({columns}) FROM STDIN") as copy:
            write = copy.write_row
            for row in rows:
                write(row + extra)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {scratch} "  # noqa: S608
            f"ON CONFLICT ({on}) DO NOTHING RETURNING {back}"
        )
        inserted = cursor.fetchall()
        cursor.execute(f"DROP TABLE {scratch}")
    return inserted

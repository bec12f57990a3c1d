"""The usage aggregate: the ``usage`` repository, writing usage records in batches with
their hourly rollups, and the usage summary, read from the rollups for whole hours; plus
the period helpers the carbon summary shares (:class:`UsageColumns`, :func:`within`,
:func:`check_aware`, :func:`key_order`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from sqlalchemy import Engine, String, bindparam, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument
from catalog.store.base import StoreBase
from catalog.store.marks import idempotent
from catalog.store.repo import Repo, RepoField

#: Most usage records one INSERT statement carries (:meth:`UsageMixin.record_usage`).
USAGE_CHUNK = 500


class UsageRepo(Repo[s.UsageRecord]):
    """:class:`Repo` of usage records whose ``delete`` also takes the record out of its
    hourly rollup (:class:`catalog.tables.UsageRollupRow`), so the summaries keep
    agreeing with the records."""

    def delete(self, row_id: str) -> None:
        """Delete one usage record and subtract it from its rollup row (removed when it
        counts no request any more). Raises NotFound."""
        r = t.UsageRollupRow
        with self.store.session() as session:
            row = self._get_row(session, row_id, lock=True)
            key = _rollup_key({c: getattr(row, c) for c in _ROLLUP_SOURCE})
            where = tuple(getattr(r, c) == v for c, v in zip(t.ROLLUP_KEYS, key, strict=True))
            costed = row.cost_usd is not None
            session.execute(update(r).where(*where).values(
                requests=r.requests - 1, prompt_tokens=r.prompt_tokens - row.prompt_tokens,
                completion_tokens=r.completion_tokens - row.completion_tokens,
                cost_usd=r.cost_usd - (row.cost_usd or 0.0),
                costed_requests=r.costed_requests - int(costed),
                energy_kwh=r.energy_kwh - row.energy_kwh,
                emissions_kg=r.emissions_kg - row.emissions_kg,
            ))
            session.execute(delete(r).where(*where, r.requests <= 0))
            session.delete(row)


class UsageMixin(StoreBase):
    """Usage records of inference requests and their summaries."""

    usage = RepoField(t.UsageRow, s.UsageRecord, kind=UsageRepo,
                      filters=("model", "adapter", "kind", "model_id", "api_key_id"))

    def __init__(self, engine: Engine):
        super().__init__(engine)
        # the statements of record_usage, built once
        usage, rollups = t.UsageRow.__table__, t.UsageRollupRow.__table__
        self._usage_columns = [c.name for c in usage.columns]
        self._usage_insert = (
            self._insert_many(usage, self._usage_columns)
            .on_conflict_do_nothing(index_elements=["id"]).returning(usage.c.id))
        self._rollup_columns = [*t.ROLLUP_KEYS, *t.ROLLUP_SUMS]
        upsert = self._insert_many(rollups, self._rollup_columns)
        self._rollup_upsert = upsert.on_conflict_do_update(
            index_elements=list(t.ROLLUP_KEYS),
            set_={c: rollups.c[c] + upsert.excluded[c] for c in t.ROLLUP_SUMS})

    @idempotent
    def record_usage(self, records: Sequence[s.UsageCreate]) -> list[str]:
        """Insert a batch of usage records in one transaction; returns every record's id
        (the caller's, or a new one), in order.

        Records whose ``id`` is already stored (a retried batch) or repeated in the batch
        are skipped, so a batch written twice is stored once. The records go in as one
        multi-row ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` per
        :data:`USAGE_CHUNK` records (sorted by id, so concurrent batches that share ids
        wait on each other in one order and never deadlock); only the rows it inserted
        are added to the hourly rollups (:class:`catalog.tables.UsageRollupRow`), upserted
        in the same transaction in sorted key order. A record without ``created_at`` is
        stamped with the time of the write.
        """
        now = t.utcnow()
        ids = [r.id or t.new_id(t.UsageRow.id_prefix) for r in records]
        rows: dict[str, dict[str, Any]] = {}
        for row_id, r in zip(ids, records, strict=True):
            if row_id not in rows:
                values = r.model_dump(exclude={"id", "created_at"})
                values.update(id=row_id, created_at=r.created_at or now,
                              total_tokens=r.prompt_tokens + r.completion_tokens)
                rows[row_id] = values
        ordered = [rows[row_id] for row_id in sorted(rows)]
        with self.session() as session:
            inserted: list[dict[str, Any]] = []
            for start in range(0, len(ordered), USAGE_CHUNK):
                chunk = ordered[start:start + USAGE_CHUNK]
                new = set(session.execute(
                    self._usage_insert, self._many_params(chunk, self._usage_columns)
                ).scalars())
                inserted.extend(v for v in chunk if v["id"] in new)
            if inserted:
                self._add_to_rollups(session, inserted)
        return ids

    def _insert_many(self, table: Any, columns: Sequence[str]) -> Any:
        """The dialect's INSERT (with ``on_conflict_do_*``) of many rows of ``columns``
        in one statement, run with :meth:`_many_params` of the rows.

        PostgreSQL: ``INSERT ... SELECT * FROM unnest(:col1, :col2, ...)``, one array
        per column. The statement stays short, so psycopg converts its placeholders once
        and caches them (it re-parses a multi-row VALUES statement, whose length grows
        with the rows, on every execution: ~40% of the time of a 500-row batch), and the
        arrays travel in binary. Values too long for a column are refused, as by a plain
        INSERT. SQLite: a plain INSERT run with a list of rows, which SQLAlchemy sends as
        multi-row VALUES ("insertmanyvalues", up to 1000 rows a statement).
        """
        if self.engine.dialect.name == "postgresql":
            # arrays of unbounded strings: an explicit cast to VARCHAR(n)[] would truncate
            # a longer value silently, where the INSERT's own cast refuses it
            arrays = [bindparam(c, type_=ARRAY(
                String() if isinstance(table.c[c].type, String) else table.c[c].type))
                for c in columns]
            rows = select(func.unnest(*arrays).table_valued(*columns).render_derived())
            return pg_insert(table).from_select(list(columns), rows)
        return sqlite_insert(table)

    def _many_params(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Any:
        """The parameters of an :meth:`_insert_many` statement for ``rows``."""
        if self.engine.dialect.name == "postgresql":
            return {c: [r[c] for r in rows] for c in columns}
        return rows

    def _add_to_rollups(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Add newly inserted usage rows (column dicts) to their hourly rollup rows: one
        ``INSERT ... ON CONFLICT DO UPDATE SET col = col + excluded.col`` over the
        groups, in sorted key order (so concurrent batches lock rollup rows in one order
        and never deadlock)."""
        sums: dict[tuple[Any, ...], list[Any]] = {}
        for v in rows:
            acc = sums.setdefault(_rollup_key(v), [0, 0, 0, 0.0, 0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += v["prompt_tokens"]
            acc[2] += v["completion_tokens"]
            if v["cost_usd"] is not None:
                acc[3] += v["cost_usd"]
                acc[4] += 1
            acc[5] += v["energy_kwh"]
            acc[6] += v["emissions_kg"]
        groups = [dict(zip(t.ROLLUP_KEYS, key, strict=True))
                  | dict(zip(t.ROLLUP_SUMS, sums[key], strict=True)) for key in sorted(sums)]
        session.execute(self._rollup_upsert, self._many_params(groups, self._rollup_columns))

    @idempotent
    def usage_summary(
        self, group_by: s.UsageGroupBy = "model", *, since: datetime | None = None,
        until: datetime | None = None, user_id: str | None = None,
        api_key_id: str | None = None,
    ) -> s.UsageSummary:
        """Requests, tokens, cost, energy (kWh) and emissions (kg CO2eq) of the usage
        records created in ``[since, until)``, grouped by ``group_by``, optionally of one
        user and/or one API key.

        Group keys: ``user`` the user id; ``key`` the API key id; ``model`` the ``model``
        name (the base model, or the media provider's model); ``adapter`` the ``model_id``
        of records with an adapter (their adapter name when they have no model id),
        records without an adapter under null; ``day`` YYYY-MM-DD; ``month`` YYYY-MM
        (UTC). ``cost_usd`` sums the records with a cost (null when none has one).

        Whole hours are read from the hourly rollups, so the time taken does not grow with
        the number of records; only the partial hours at the ends of a period that does
        not start or end on the hour are read from the records themselves.

        Raises:
            InvalidArgument: an unknown ``group_by``, or a naive ``since``/``until``.
        """
        if group_by not in get_args(s.UsageGroupBy):
            raise InvalidArgument(
                f"group_by must be one of {', '.join(get_args(s.UsageGroupBy))}",
                field="group_by")
        check_aware(since=since, until=until)

        def key(c: UsageColumns) -> tuple[Any, ...]:
            if group_by in ("day", "month"):
                return (self._period(c.time, group_by),)
            if group_by == "adapter":
                return (case((c.adapter.is_not(None), func.coalesce(c.model_id, c.adapter)),
                             else_=None),)
            return ({"user": c.user_id, "key": c.api_key_id, "model": c.model}[group_by],)

        with self.session() as session:
            groups = self._usage_sums(session, key, since=since, until=until,
                                      user_id=user_id, api_key_id=api_key_id)
        rows = [_summary_row(k[0], v) for k, v in sorted(groups.items(), key=key_order)]
        total = _summary_row(None, _UsageSums.total(groups.values()))
        return s.UsageSummary(group_by=group_by, since=since, until=until, rows=rows,
                              total=total)

    def _usage_sums(
        self, session: Session, key: Callable[[UsageColumns], tuple[Any, ...]], *,
        since: datetime | None, until: datetime | None, user_id: str | None = None,
        api_key_id: str | None = None,
    ) -> dict[tuple[Any, ...], _UsageSums]:
        """Usage in ``[since, until)`` summed per ``key`` (SQL expressions over
        :class:`UsageColumns`): whole hours from the rollups, partial hours at the ends
        from the records (:func:`_usage_segments`)."""
        out: dict[tuple[Any, ...], _UsageSums] = {}
        for cols, lo, hi in _usage_segments(since, until):
            keys = key(cols)
            conds = within(cols.time, lo, hi)
            if user_id is not None:
                conds.append(cols.user_filter == user_id)
            if api_key_id is not None:
                conds.append(cols.api_key_filter == api_key_id)
            stmt = select(*keys, *cols.measures).where(*conds).group_by(*keys)
            for row in session.execute(stmt):
                k, measures = tuple(row[:len(keys)]), row[len(keys):]
                out.setdefault(k, _UsageSums()).add(*measures)
        return out

    def _period(self, column: Any, group_by: str) -> Any:
        """SQL for the UTC day (``YYYY-MM-DD``) or month (``YYYY-MM``, ``group_by``
        ``month``) of ``column``, in this store's dialect."""
        fmt = {"day": ("%Y-%m-%d", "YYYY-MM-DD"), "month": ("%Y-%m", "YYYY-MM")}[group_by]
        if self.engine.dialect.name == "sqlite":
            return func.strftime(fmt[0], column)
        return func.to_char(column, fmt[1])


@dataclass(frozen=True)
class UsageColumns:
    """Usage records or their hourly rollups seen through the same names: key columns
    (null where a record has none; rollups keep ``''``), the time column, the columns
    filters compare (indexed), and the summed measures in :class:`_UsageSums`' order."""

    time: Any
    user_id: Any
    api_key_id: Any
    model: Any
    model_id: Any
    adapter: Any
    user_filter: Any
    api_key_filter: Any
    measures: tuple[Any, ...]


_u, _r = t.UsageRow, t.UsageRollupRow
_RAW = UsageColumns(
    time=_u.created_at, user_id=_u.user_id, api_key_id=_u.api_key_id, model=_u.model,
    model_id=_u.model_id, adapter=_u.adapter, user_filter=_u.user_id,
    api_key_filter=_u.api_key_id,
    measures=(func.count(), func.sum(_u.prompt_tokens), func.sum(_u.completion_tokens),
              func.sum(_u.cost_usd), func.count(_u.cost_usd), func.sum(_u.energy_kwh),
              func.sum(_u.emissions_kg)),
)
_ROLLED = UsageColumns(
    time=_r.bucket, user_id=func.nullif(_r.user_id, ""),
    api_key_id=func.nullif(_r.api_key_id, ""), model=_r.model,
    model_id=func.nullif(_r.model_id, ""), adapter=func.nullif(_r.adapter, ""),
    user_filter=_r.user_id, api_key_filter=_r.api_key_id,
    measures=(func.sum(_r.requests), func.sum(_r.prompt_tokens),
              func.sum(_r.completion_tokens), func.sum(_r.cost_usd),
              func.sum(_r.costed_requests), func.sum(_r.energy_kwh), func.sum(_r.emissions_kg)),
)


@dataclass
class _UsageSums:
    """Running totals of one group of usage."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    costed_requests: int = 0
    energy_kwh: float = 0.0
    emissions_kg: float = 0.0

    def add(self, requests: Any, prompt: Any, completion: Any, cost: Any, costed: Any,
            kwh: Any, kg: Any) -> None:
        """Add one query row's measures (SQL sums: None for no rows, Decimal for sums of
        BIGINT on PostgreSQL). Float sums are floored at 0: rollup rows that records were
        subtracted from (:meth:`UsageRepo.delete`) may sit a rounding error below it."""
        self.requests += int(requests or 0)
        self.prompt_tokens += int(prompt or 0)
        self.completion_tokens += int(completion or 0)
        self.cost_usd += max(0.0, float(cost or 0.0))
        self.costed_requests += int(costed or 0)
        self.energy_kwh += max(0.0, float(kwh or 0.0))
        self.emissions_kg += max(0.0, float(kg or 0.0))

    @classmethod
    def total(cls, parts: Iterable[_UsageSums]) -> _UsageSums:
        """The sum of ``parts``."""
        out = cls()
        for p in parts:
            out.add(p.requests, p.prompt_tokens, p.completion_tokens, p.cost_usd,
                    p.costed_requests, p.energy_kwh, p.emissions_kg)
        return out


def _summary_row(key: Any, v: _UsageSums) -> s.UsageSummaryRow:
    return s.UsageSummaryRow(
        key=None if key is None else str(key), requests=v.requests,
        prompt_tokens=v.prompt_tokens, completion_tokens=v.completion_tokens,
        total_tokens=v.prompt_tokens + v.completion_tokens,
        cost_usd=v.cost_usd if v.costed_requests else None, energy_kwh=v.energy_kwh,
        emissions_kg=v.emissions_kg,
    )


def _floor_hour(when: datetime) -> datetime:
    """The UTC hour ``when`` (timezone-aware) falls in."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


#: The usage columns a rollup row is keyed by, in :data:`catalog.tables.ROLLUP_KEYS`' order
#: (the record's ``created_at`` gives the rollup's ``bucket``).
_ROLLUP_SOURCE = ("created_at", *t.ROLLUP_KEYS[1:])


def _rollup_key(values: dict[str, Any]) -> tuple[Any, ...]:
    """The rollup key (:data:`catalog.tables.ROLLUP_KEYS`) of one usage record's column
    values: its hour, and ``''`` for a key column that is null (rollups keep no nulls)."""
    hour, *rest = (values[c] for c in _ROLLUP_SOURCE)
    return (_floor_hour(hour), *("" if v is None else v for v in rest))


def within(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    """SQL conditions ``since <= column < until`` (a None bound: none on that side)."""
    conds = []
    if since is not None:
        conds.append(column >= since)
    if until is not None:
        conds.append(column < until)
    return conds


def _usage_segments(
    since: datetime | None, until: datetime | None
) -> list[tuple[UsageColumns, datetime | None, datetime | None]]:
    """Split ``[since, until)`` into the whole hours read from the rollups and the partial
    hours at either end read from the records (None: unbounded on that side)."""
    def aligned(when: datetime | None) -> bool:
        return when is None or when == _floor_hour(when)

    if aligned(since) and aligned(until):
        return [(_ROLLED, since, until)]
    try:
        lo = since if aligned(since) else _floor_hour(since) + timedelta(hours=1)  # type: ignore[arg-type]
    except OverflowError:  # since is in datetime's last hour: nothing whole after it
        return [(_RAW, since, until)]
    hi = until if aligned(until) else _floor_hour(until)  # type: ignore[arg-type]
    if lo is not None and hi is not None and lo >= hi:
        return [(_RAW, since, until)]
    segments = [(_ROLLED, lo, hi)]
    if lo != since:
        segments.append((_RAW, since, lo))
    if hi != until:
        segments.append((_RAW, hi, until))
    return segments


def check_aware(**times: datetime | None) -> None:
    """Raise InvalidArgument naming the first naive datetime (its zone is ambiguous)."""
    for field, when in times.items():
        if when is not None and when.utcoffset() is None:
            raise InvalidArgument(f"{field} must be timezone-aware (e.g. ending in Z)",
                                  field=field)


def key_order(item: tuple[Any, Any]) -> tuple[bool, str]:
    """Sort groups by key, null last."""
    key = item[0][0] if isinstance(item[0], tuple) else item[0]
    return (key is None, str(key))

"""The batches aggregate: the ``batches`` repository, a batch's creation, claim and status
transitions, and its event log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument, InvalidTransition
from catalog.lifecycle import BATCH_TRANSITIONS, check_transition, is_terminal
from catalog.store.base import StoreBase
from catalog.store.events import append_event, claim_fields, events_after
from catalog.store.keys import lock_job_token, revoke_job_tokens
from catalog.store.marks import idempotent
from catalog.store.repo import Repo, RepoField, plain

#: Columns of a batch that :meth:`Repo.update` and :meth:`BatchesMixin.transition_batch`
#: may set (its status and status times move by transitions only).
BATCH_UPDATABLE = (
    "ray_job_id", "output_file_id", "error_file_id", "errors", "request_total",
    "request_completed", "request_failed", "prompt_tokens", "completion_tokens",
    "energy_kwh", "emissions_kg",
)


class BatchRepo(Repo[s.Batch]):
    """:class:`Repo` of batches: a ``BatchCreate``'s ``metadata`` goes to the
    ``batch_metadata`` column (``metadata`` is SQLAlchemy's own attribute)."""

    def _insert(self, session: Session, request: BaseModel, **extra: Any) -> Any:
        values = request.model_dump(mode="json", exclude={"id", "metadata"})
        values = {k: v for k, v in values.items() if hasattr(self.row, k)}
        values["batch_metadata"] = getattr(request, "metadata", None)
        values.update(extra)
        row = self.row(id=t.new_id(self.row.id_prefix), **values)
        session.add(row)
        session.flush()
        return row


class BatchesMixin(StoreBase):
    """OpenAI-style batches of requests run as Ray jobs."""

    batches = RepoField(
        t.BatchRow, s.Batch,
        filters=("status", "endpoint", "input_file_id", "api_key_id", "ray_job_id"),
        updatable=BATCH_UPDATABLE, kind=BatchRepo,
    )

    def create_batch(
        self, request: s.BatchCreate, *, user_id: str | None = None,
        api_key_id: str | None = None, ray_job_id: str | None = None,
        job_token_id: str | None = None,
    ) -> s.Batch:
        """Insert a ``validating`` batch of the input file's lines (``request_counts.total``
        = the dataset's rows), expiring ``completion_window`` (24 h) after creation, and log
        its first event.

        ``job_token_id``: a live, unbound job token (:meth:`create_job_token`); the batch
        is filed for the token's user, under that key, and the token is bound to it, in
        this transaction (``user_id`` and ``api_key_id`` are then ignored).

        Raises:
            InvalidArgument: no dataset ``input_file_id``, or one whose format is not
                ``openai_batch`` (``field="input_file_id"``); a ``job_token_id`` that is
                no live job token or already registered a job (``field="job_token_id"``).
                Nothing is written.
        """
        with self.session() as session:
            token = lock_job_token(session, job_token_id) if job_token_id else None
            if token is not None:
                user_id, api_key_id = token.user_id, token.id
            data = session.get(t.DatasetRow, request.input_file_id)
            if data is None:
                raise InvalidArgument(f"input file {request.input_file_id!r} not found",
                                      field="input_file_id")
            if data.format != s.DatasetFormat.openai_batch:
                raise InvalidArgument(
                    f"input file {request.input_file_id!r} is a {data.format} dataset; a batch "
                    "reads request lines {custom_id, method, url, body} (format openai_batch)",
                    field="input_file_id")
            now = t.utcnow()
            row = self.batches._insert(
                session, request, status=s.BatchStatus.validating, user_id=user_id,
                api_key_id=api_key_id, ray_job_id=ray_job_id, request_total=data.num_rows,
                created_at=now, updated_at=now, expires_at=now + timedelta(hours=24))
            session.add(t.BatchEventRow(
                batch_id=row.id, message=f"batch created: {data.num_rows} lines of "
                f"{request.input_file_id} to {request.endpoint}"))
            if token is not None:
                token.job_id = row.id
            return s.Batch.model_validate(row)

    @idempotent
    def transition_batch(
        self, batch_id: str, status: s.BatchStatus | str, *, message: str | None = None,
        **fields: Any,
    ) -> s.Batch:
        """Move a batch to ``status`` (:data:`catalog.lifecycle.BATCH_TRANSITIONS`), stamp
        its ``<status>_at`` time, set ``fields`` (columns of :data:`BATCH_UPDATABLE`) and
        log a ``batch_events`` row (``message`` appended). A move to the current status
        changes only ``fields``, so a repeated call is harmless.

        Raises:
            NotFound, InvalidTransition, InvalidArgument (a field not updatable); nothing
            is written.
        """
        status = s.BatchStatus(status)
        return self.batches.change(batch_id, lambda session, row: self._move_batch(
            session, row, status, message=message, fields=fields))

    def _move_batch(
        self, session: Session, row: t.BatchRow, status: s.BatchStatus, *,
        message: str | None, fields: dict[str, Any],
    ) -> None:
        """:meth:`transition_batch` on a row locked in ``session``: set ``fields``, and
        unless the batch is at ``status`` already, move it, stamp the time and log the
        event. Raises InvalidArgument (a field not updatable), InvalidTransition."""
        self.batches.check_updatable(fields)
        changed = check_transition(BATCH_TRANSITIONS, row.status, status)
        for key, value in fields.items():
            setattr(row, key, plain(value))
        if changed:
            row.status = status
            stamp = f"{status.value}_at"
            if hasattr(t.BatchRow, stamp) and getattr(row, stamp) is None:
                setattr(row, stamp, t.utcnow())
            if is_terminal(BATCH_TRANSITIONS, status):
                revoke_job_tokens(session, row.id)
            level = "error" if status == s.BatchStatus.failed else "info"
            text = f"status -> {status}" + (f": {message}" if message else "")
            session.add(t.BatchEventRow(batch_id=row.id, level=level, message=text))
        row.updated_at = t.utcnow()
        session.flush()

    def claim_batch(self, batch_id: str, ray_job_id: str | None) -> s.Batch:
        """Take a ``validating`` batch to ``in_progress`` for the caller, atomically: a
        batch runs at most once. Records ``ray_job_id`` (the caller's Ray job submission
        id) when the batch has none; when it has one, the caller must present it.

        Raises:
            NotFound. InvalidTransition: the batch is not validating (``field="status"``)
                or belongs to another Ray job (``field="ray_job_id"``); nothing is written.
        """
        def claim(session: Session, row: t.BatchRow) -> None:
            if row.status != s.BatchStatus.validating:
                raise InvalidTransition(
                    f"batch {batch_id} is already {row.status}: a batch runs at most once",
                    field="status")
            self._move_batch(session, row, s.BatchStatus.in_progress, message=None,
                             fields=claim_fields("batch", row, ray_job_id))

        return self.batches.change(batch_id, claim)

    @idempotent
    def add_batch_event(self, batch_id: str, event: s.JobEvent) -> None:
        """Append a log line to a batch (same rules as :meth:`add_event`: a repeated call
        with the same time and message writes nothing). Raises NotFound."""
        with self.session() as session:
            self.batches._get_row(session, batch_id)
            append_event(session, t.BatchEventRow.batch_id, batch_id, event)

    @idempotent
    def list_batch_events(
        self, batch_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[dict]:
        """A batch's events with sequence number > ``after``, oldest first:
        ``[{"seq", "level", "message", "created_at"}]`` (as :meth:`list_events`).
        Raises NotFound."""
        with self.session() as session:
            self.batches._get_row(session, batch_id)
            return events_after(session, t.BatchEventRow.batch_id, batch_id, after, limit)

"""The training aggregate: the ``training_jobs`` repository, a job's creation, claim and
status transitions, and its metrics, checkpoints and event log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument, InvalidTransition
from catalog.lifecycle import JOB_TRANSITIONS, check_transition
from catalog.store.base import StoreBase
from catalog.store.events import append_event, claim_fields, events_after, set_status
from catalog.store.keys import lock_job_token, revoke_job_tokens
from catalog.store.marks import idempotent
from catalog.store.repo import RepoField


class TrainingMixin(StoreBase):
    """Fine-tuning jobs and what they report while they run."""

    training_jobs = RepoField(
        t.TrainingJobRow, s.TrainingJob,
        filters=("status", "base_model_id", "dataset_id"),
        updatable=(
            "ray_job_id", "error_message", "energy_kwh", "emissions_kg",
            "eval_loss_before", "eval_loss_after", "output_model_id",
            "progress", "current_step", "total_steps", "current_epoch", "total_epochs",
        ),
    )

    def create_training_job(
        self, request: s.TrainingJobCreate, *, job_token_id: str | None = None,
    ) -> s.TrainingJob:
        """Insert a pending job after checking its base model and datasets exist and that
        the datasets' format suits its method: dpo trains on preference pairs
        (:data:`catalog.schemas.PREFERENCE_FORMATS`), sft on chats
        (:data:`~catalog.schemas.CHAT_FORMATS`); batch files
        (:data:`~catalog.schemas.BATCH_FORMATS`) train nothing.

        ``job_token_id``: a live, unbound job token (:meth:`create_job_token`); the job
        is filed for the token's user and the token is bound to it, in this transaction.

        Raises:
            InvalidArgument: a missing reference (``field`` names it), a dataset or eval
                dataset whose format the method cannot train on (``field="method"``, the
                message names the formats the method needs), or a ``job_token_id`` that
                is no live job token or already registered a job (``field="job_token_id"``).
                Nothing is written.
        """
        with self.session() as session:
            token = lock_job_token(session, job_token_id) if job_token_id else None
            if token is not None:
                request = request.model_copy(update={"user_id": token.user_id})
            base = session.get(t.ModelRow, request.base_model_id)
            if base is None or base.kind != s.ModelKind.base:
                raise InvalidArgument(
                    f"base model {request.base_model_id!r} not found", field="base_model_id"
                )
            for field in ("dataset_id", "eval_dataset_id"):
                ref = getattr(request, field)
                if not ref:
                    continue
                data = session.get(t.DatasetRow, ref)
                if data is None:
                    raise InvalidArgument(f"dataset {ref!r} not found", field=field)
                _check_method_format(request.method, field, data)
            resume = _resolve_checkpoint(session, request)
            if resume is not None:
                request = request.model_copy(update={"resume_from_checkpoint": resume.path})
            row = self.training_jobs._insert(session, request, status=s.JobStatus.pending)
            session.add(t.JobEventRow(job_id=row.id, message="job created"))
            if resume is not None:
                session.add(t.JobEventRow(
                    job_id=row.id, message=f"resumes from checkpoint step {resume.step} of "
                    f"job {resume.job_id} ({resume.path})"))
            if token is not None:
                token.job_id = row.id
            return s.TrainingJob.model_validate(row)

    @idempotent
    def transition_job(
        self, job_id: str, status: s.JobStatus | str, *, error_message: str | None = None,
        **fields: Any,
    ) -> s.TrainingJob:
        """Move a job to ``status`` (see :mod:`catalog.lifecycle`) and log an event.

        Sets ``started_at`` on entering running and ``completed_at`` on a terminal
        status. ``fields`` may set the job's updatable columns in the same
        transaction. A move to the current status writes nothing, so a retried call
        (its first answer lost while the actor restarted) is harmless. Raises NotFound,
        InvalidTransition (nothing written).
        """
        status = s.JobStatus(status)
        return self.training_jobs.change(job_id, lambda session, row: self._move_job(
            session, row, status, error_message=error_message, fields=fields))

    def _move_job(
        self, session: Session, row: t.TrainingJobRow, status: s.JobStatus, *,
        error_message: str | None, fields: dict[str, Any],
    ) -> None:
        """:meth:`transition_job` on a row locked in ``session``: check the transition, set
        the status, its timestamps and ``fields``, log the event. A move to the current
        status writes nothing. Raises InvalidTransition, InvalidArgument (a field that is
        not updatable), both before anything is written."""
        if not check_transition(JOB_TRANSITIONS, row.status, status):
            return
        self.training_jobs.check_updatable(fields)
        if set_status(row, status, JOB_TRANSITIONS, started=s.JobStatus.running) is not None:
            revoke_job_tokens(session, row.id)
        if error_message is not None:
            row.error_message = error_message
        for key, value in fields.items():
            setattr(row, key, value)
        level = "error" if status == s.JobStatus.failed else "info"
        message = f"status -> {status}" + (f": {error_message}" if error_message else "")
        session.add(t.JobEventRow(job_id=row.id, level=level, message=message))
        session.flush()

    def claim_job(self, job_id: str, ray_job_id: str | None) -> s.TrainingJob:
        """Take a ``pending`` or ``queued`` job to ``running`` for the caller, atomically
        (the row is locked, as in :meth:`transition_job`, whose move and event this is).

        A catalog job runs at most once: of two processes claiming it, one wins. When the
        job records no Ray job yet, ``ray_job_id`` (the caller's Ray job submission id,
        None outside a Ray job) is recorded; when it records one, the caller must present
        the same id.

        Returns:
            The job, now running, with ``started_at`` set.

        Raises:
            NotFound: no such job.
            InvalidTransition: the job is already running or has ended
                (``field="status"``), or another Ray job owns it (``field="ray_job_id"``).
                Nothing is written.
        """
        def claim(session: Session, row: t.TrainingJobRow) -> None:
            if row.status not in (s.JobStatus.pending, s.JobStatus.queued):
                raise InvalidTransition(
                    f"job {job_id} is already {row.status}: a catalog job runs at most once",
                    field="status",
                )
            self._move_job(session, row, s.JobStatus.running, error_message=None,
                           fields=claim_fields("job", row, ray_job_id))

        return self.training_jobs.change(job_id, claim)

    @idempotent
    def append_metrics(self, job_id: str, points: Sequence[s.MetricPoint]) -> int:
        """Record metric points of a job; one row per step. Returns how many points.

        A point at a step already recorded merges into that row (its non-null fields
        overwrite; ``extra`` merges key by key, new keys overwriting): the eval loss of
        step N joins step N's train loss, and a run resumed from a checkpoint replaces the
        steps it trains again instead of repeating them.

        Raises:
            NotFound: no such job.
        """
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            for p in points:
                values = p.model_dump(exclude_none=True)
                row = session.scalars(
                    select(t.JobMetricRow)
                    .where(t.JobMetricRow.job_id == job_id, t.JobMetricRow.step == p.step)
                    .order_by(t.JobMetricRow.id).limit(1)
                ).first()
                if row is None:
                    session.add(t.JobMetricRow(job_id=job_id, **values))
                    session.flush()  # a later point of this batch at the same step merges
                else:
                    if "extra" in values:  # a new dict: JSON columns track assignment only
                        values["extra"] = {**(row.extra or {}), **values["extra"]}
                    for key, value in values.items():
                        setattr(row, key, value)
            return len(points)

    @idempotent
    def list_metrics(self, job_id: str, *, after_step: int | None = None) -> list[s.MetricPoint]:
        """A job's metric points in step order; with ``after_step``, only those at a
        step above it (a live stream's next read). Raises NotFound."""
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            where = [t.JobMetricRow.job_id == job_id]
            if after_step is not None:
                where.append(t.JobMetricRow.step > after_step)
            rows = session.scalars(
                select(t.JobMetricRow).where(*where)
                .order_by(t.JobMetricRow.step, t.JobMetricRow.id)
            )
            return [s.MetricPoint.model_validate(r) for r in rows]

    @idempotent
    def add_checkpoint(
        self, job_id: str, checkpoint: s.Checkpoint, *, keep: int | None = None
    ) -> list[s.Checkpoint]:
        """Record a checkpoint (its eval and train loss, in nats, and size in bytes when
        given); with ``keep``, forget the others as Ray Train's ``CheckpointConfig(
        num_to_keep=keep, checkpoint_score_attribute="eval_loss",
        checkpoint_score_order="min")`` deletes them: kept are the ``keep`` best by eval loss
        (lowest first; equal losses: newest first; checkpoints without one rank below all
        with one, newest first among them) plus always the newest (highest step), which Ray
        never deletes, so up to ``keep + 1``.

        A checkpoint at an already recorded step replaces it (a resumed run saves the same
        step again).

        Returns:
            The job's recorded checkpoints, oldest (lowest step) first.

        Raises:
            NotFound: no such job.
            InvalidArgument: ``keep`` below 1.
        """
        if keep is not None and keep < 1:
            raise InvalidArgument("keep must be at least 1", field="keep")
        with self.session() as session:
            self.training_jobs._get_row(session, job_id, lock=True)
            existing = session.scalars(
                select(t.JobCheckpointRow).where(
                    t.JobCheckpointRow.job_id == job_id, t.JobCheckpointRow.step == checkpoint.step
                )
            ).first()
            if existing is not None:
                session.delete(existing)
                session.flush()
            values = checkpoint.model_dump(exclude_none=True)
            session.add(t.JobCheckpointRow(job_id=job_id, **values))
            session.flush()
            rows = list(session.scalars(
                select(t.JobCheckpointRow)
                .where(t.JobCheckpointRow.job_id == job_id)
                .order_by(t.JobCheckpointRow.step)
            ))
            if keep is not None:
                kept = _best_checkpoints(rows, keep)
                for old in rows:
                    if old not in kept:
                        session.delete(old)
                rows = [r for r in rows if r in kept]
            return [s.Checkpoint.model_validate(r) for r in rows]

    @idempotent
    def list_checkpoints(self, job_id: str) -> list[s.Checkpoint]:
        """A job's recorded checkpoints, oldest first. Raises NotFound."""
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            rows = session.scalars(
                select(t.JobCheckpointRow)
                .where(t.JobCheckpointRow.job_id == job_id)
                .order_by(t.JobCheckpointRow.step)
            )
            return [s.Checkpoint.model_validate(r) for r in rows]

    @idempotent
    def add_event(self, job_id: str, event: s.JobEvent) -> None:
        """Append a log event to a job. The event's ``created_at`` is set where the event
        is made, so a repeated call (after the catalog actor restarted) finds the same
        job, time and message already recorded and writes nothing. Raises NotFound."""
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            append_event(session, t.JobEventRow.job_id, job_id, event)

    @idempotent
    def list_events(self, job_id: str, *, after: int = 0, limit: int = 1000) -> list[dict]:
        """Events with sequence number > ``after``.

        Returns ``[{"seq", "level", "message", "created_at"}]``, oldest first.
        """
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            return events_after(session, t.JobEventRow.job_id, job_id, after, limit)


def _resolve_checkpoint(session, request: s.TrainingJobCreate) -> t.JobCheckpointRow | None:
    """The recorded checkpoint ``request.resume_from_checkpoint`` names as
    ``<job id>:<step>`` (:func:`catalog.schemas.checkpoint_reference`), or None when it
    names a folder or nothing.

    Raises:
        InvalidArgument: ``field="resume_from_checkpoint"``: no such job for this user
            (another user's job is not found either), another base model or other LoRA
            settings than this job's (the adapter's shapes would not load), or no
            checkpoint recorded at that step (the message lists those kept).
    """
    ref = s.checkpoint_reference(request.resume_from_checkpoint)
    if ref is None:
        return None
    job_id, step = ref
    field = "resume_from_checkpoint"
    source = session.get(t.TrainingJobRow, job_id)
    if source is None or (request.user_id is not None and source.user_id != request.user_id):
        raise InvalidArgument(f"training job {job_id!r} not found", field=field)
    if source.base_model_id != request.base_model_id:
        raise InvalidArgument(
            f"job {job_id} trained base model {source.base_model_id!r}; this job's is "
            f"{request.base_model_id!r}", field=field)
    if s.LoraConfig.model_validate(source.lora) != request.lora:
        raise InvalidArgument(
            f"job {job_id} trained with other LoRA settings ({source.lora}); a checkpoint "
            "resumes with the same r, lora_alpha and target_modules", field=field)
    rows = session.scalars(select(t.JobCheckpointRow).where(
        t.JobCheckpointRow.job_id == job_id)).all()
    found = next((row for row in rows if row.step == step), None)
    if found is None:
        kept = sorted(row.step for row in rows)
        raise InvalidArgument(
            f"job {job_id} has no checkpoint at step {step}; kept: {kept or 'none'}",
            field=field)
    return found


def _check_method_format(
    method: s.TrainingMethod, field: str, data: t.DatasetRow
) -> None:
    """Raise InvalidArgument (``field="method"``) when ``method`` cannot train on the
    format of dataset ``data`` (given as the job's ``field``)."""
    if method == s.TrainingMethod.dpo and data.format not in s.PREFERENCE_FORMATS:
        needs = sorted(s.PREFERENCE_FORMATS)
        what = "preference pairs"
    elif method == s.TrainingMethod.sft and data.format not in s.CHAT_FORMATS:
        needs = sorted(s.CHAT_FORMATS)
        what = "chats (dpo trains on preference pairs, nothing on batch files)"
    else:
        return
    raise InvalidArgument(
        f"method {method} trains on {what}: {field} {data.id!r} has format {data.format}, "
        f"{method} needs one of {', '.join(needs)}",
        field="method",
    )


def _best_checkpoints(
    rows: Sequence[t.JobCheckpointRow], keep: int
) -> list[t.JobCheckpointRow]:
    """The ``keep`` best of ``rows`` by eval loss (lowest first; ties and rows without a
    loss, which rank last, newest first) plus the newest row (highest step)."""
    ranked = sorted(rows, key=lambda r: (r.eval_loss is None, r.eval_loss or 0.0, -r.step))
    kept = ranked[:keep]
    newest = max(rows, key=lambda r: r.step, default=None)
    if newest is not None and newest not in kept:
        kept.append(newest)
    return kept

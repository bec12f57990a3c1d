"""What the aggregates whose rows move through a lifecycle share: the event logs of
training jobs and batches (``job_events``, ``batch_events``: one append that a repeated
call cannot double, one read after a sequence number), a status move's timestamps
(:func:`set_status`, jobs and predictions) and a claim by a Ray job
(:func:`claim_fields`, jobs and batches)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidTransition
from catalog.lifecycle import is_terminal


def append_event(session: Session, owner: Any, owner_id: str, event: s.JobEvent) -> None:
    """Add ``event`` to the event table of column ``owner`` (``JobEventRow.job_id`` or
    ``BatchEventRow.batch_id``) for row ``owner_id``, unless an event with the same time
    and message is already there (a call repeated after the catalog actor restarted)."""
    table = owner.class_
    if event.created_at is not None and session.scalar(
        select(table.id).where(owner == owner_id, table.created_at == event.created_at,
                               table.message == event.message).limit(1)) is not None:
        return
    session.add(table(**{owner.key: owner_id}, **event.model_dump(exclude_none=True)))


def events_after(
    session: Session, owner: Any, owner_id: str, after: int, limit: int
) -> list[dict]:
    """Up to ``limit`` events of ``owner_id`` (in the table of column ``owner``) with
    sequence number above ``after``, oldest first: ``[{"seq", "level", "message",
    "created_at"}]``."""
    table = owner.class_
    rows = session.scalars(select(table).where(owner == owner_id, table.id > after)
                           .order_by(table.id).limit(limit))
    return [{"seq": r.id, "level": r.level, "message": r.message, "created_at": r.created_at}
            for r in rows]


def set_status(row: Any, status: str, transitions: dict[str, frozenset[str]], *,
               started: str) -> datetime | None:
    """Set ``row.status`` to ``status`` with its times: ``started_at`` when the row first
    enters ``started``, ``completed_at`` when ``status`` is terminal in ``transitions``
    (:mod:`catalog.lifecycle`). Returns ``completed_at`` when it set it, else None."""
    now = t.utcnow()
    row.status = status
    if status == started and row.started_at is None:
        row.started_at = now
    if not is_terminal(transitions, status):
        return None
    row.completed_at = now
    return now


def claim_fields(what: str, row: Any, ray_job_id: str | None) -> dict[str, Any]:
    """The columns a claim by the Ray job ``ray_job_id`` (None outside a Ray job) sets on
    ``row``, a training job or batch (``what`` names it in messages): its ``ray_job_id``
    when it records none yet. Raises InvalidTransition (``field="ray_job_id"``) when
    another Ray job owns it."""
    if row.ray_job_id is not None and row.ray_job_id != ray_job_id:
        raise InvalidTransition(
            f"{what} {row.id} belongs to Ray job {row.ray_job_id}, not {ray_job_id}",
            field="ray_job_id")
    return {"ray_job_id": ray_job_id} if ray_job_id is not None else {}

"""Status state machines. A transition not listed here raises InvalidTransition.

Training jobs: ``pending -> queued -> running -> completed | failed | cancelled``;
a job may fail or be cancelled before it runs. Predictions follow Replicate's
lifecycle (https://replicate.com/docs/topics/predictions/lifecycle):
``starting -> processing -> succeeded | failed | canceled``, and a provider may
report a terminal status without ever reporting ``processing``. Batches follow
OpenAI's Batch API (https://platform.openai.com/docs/guides/batch): ``validating ->
in_progress -> finalizing -> completed``, ``failed`` from any live status, ``cancelling
-> cancelled`` (a batch still validating may be cancelled at once), ``expired`` past its
window. Evaluations: ``pending -> running -> completed | failed``, and one may fail
before it runs (a refused submission). Terminal states have no way out. Moving to the
state a row is already in is a no-op (webhooks and pollers repeat themselves), not an
error.
"""

from __future__ import annotations

from catalog.errors import InvalidTransition
from catalog.schemas import BatchStatus, EvaluationStatus, JobStatus, PredictionStatus

J = JobStatus
P = PredictionStatus
B = BatchStatus
E = EvaluationStatus

JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    J.pending: frozenset({J.queued, J.running, J.failed, J.cancelled}),
    J.queued: frozenset({J.running, J.failed, J.cancelled}),
    J.running: frozenset({J.completed, J.failed, J.cancelled}),
    J.completed: frozenset(),
    J.failed: frozenset(),
    J.cancelled: frozenset(),
}

PREDICTION_TRANSITIONS: dict[str, frozenset[str]] = {
    P.starting: frozenset({P.processing, P.succeeded, P.failed, P.canceled}),
    P.processing: frozenset({P.succeeded, P.failed, P.canceled}),
    P.succeeded: frozenset(),
    P.failed: frozenset(),
    P.canceled: frozenset(),
}

BATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    B.validating: frozenset({B.in_progress, B.failed, B.cancelling, B.cancelled, B.expired}),
    B.in_progress: frozenset({B.finalizing, B.completed, B.failed, B.cancelling, B.expired}),
    B.finalizing: frozenset({B.completed, B.failed, B.cancelling, B.expired}),
    B.cancelling: frozenset({B.cancelled, B.failed}),
    B.completed: frozenset(),
    B.failed: frozenset(),
    B.cancelled: frozenset(),
    B.expired: frozenset(),
}

EVALUATION_TRANSITIONS: dict[str, frozenset[str]] = {
    E.pending: frozenset({E.running, E.failed}),
    E.running: frozenset({E.completed, E.failed}),
    E.completed: frozenset(),
    E.failed: frozenset(),
}

#: Job statuses with no way out: completed, failed, cancelled.
TERMINAL_JOB_STATUSES: frozenset[JobStatus] = frozenset(
    J(status) for status, nxt in JOB_TRANSITIONS.items() if not nxt)
#: Prediction statuses with no way out: succeeded, failed, canceled.
TERMINAL_PREDICTION_STATUSES: frozenset[PredictionStatus] = frozenset(
    P(status) for status, nxt in PREDICTION_TRANSITIONS.items() if not nxt)

#: Batch statuses with no way out: completed, failed, cancelled, expired.
TERMINAL_BATCH_STATUSES: frozenset[BatchStatus] = frozenset(
    B(status) for status, nxt in BATCH_TRANSITIONS.items() if not nxt)


#: Evaluation statuses with no way out: completed, failed.
TERMINAL_EVALUATION_STATUSES: frozenset[EvaluationStatus] = frozenset(
    E(status) for status, nxt in EVALUATION_TRANSITIONS.items() if not nxt)


def is_terminal(table: dict[str, frozenset[str]], status: str) -> bool:
    """True when ``status`` has no outgoing transition in ``table``."""
    return not table[status]


def check_transition(table: dict[str, frozenset[str]], current: str, new: str) -> bool:
    """Return True if ``current -> new`` changes the row, False for a no-op.

    Raises:
        InvalidTransition: ``new`` is unknown or not reachable from ``current``.
    """
    if new not in table:
        raise InvalidTransition(f"unknown status {new!r}", field="status")
    if new == current:
        return False
    if new not in table[current]:
        allowed = ", ".join(sorted(table[current])) or "none (terminal)"
        raise InvalidTransition(
            f"cannot change status from {current} to {new}; allowed: {allowed}", field="status"
        )
    return True

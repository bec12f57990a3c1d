"""The evaluations aggregate: an adapter scored against its base model, its lifecycle
(``pending -> running -> completed | failed``) and the summary it leaves on the model
and the training job."""

from __future__ import annotations

from collections.abc import Sequence

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument, InvalidTransition
from catalog.lifecycle import EVALUATION_TRANSITIONS, check_transition, is_terminal
from catalog.store.base import StoreBase
from catalog.store.events import claim_fields
from catalog.store.keys import revoke_job_tokens
from catalog.store.repo import RepoField

#: Formats an evaluation reads prompts and references from: chats (the last assistant
#: turn is the reference) and preference pairs (the chosen reply is).
EVALUATION_FORMATS = s.CHAT_FORMATS | s.PREFERENCE_FORMATS


class EvaluationsMixin(StoreBase):
    """Evaluations of adapters against their base models."""

    evaluations = RepoField(
        t.EvaluationRow, s.Evaluation,
        filters=("model_id", "job_id", "dataset_id", "status", "ray_job_id"),
        updatable=("batch_id", "ray_job_id"),
    )

    def create_evaluation(
        self, model_id: str, request: s.EvaluationCreate, *, job_id: str | None = None,
    ) -> s.Evaluation:
        """Insert a ``pending`` evaluation of the adapter ``model_id`` against its base
        model on ``request.dataset_id``; ``job_id``: the training job that runs it.

        Raises:
            InvalidArgument: no such model (``field="model_id"``) or it is no adapter;
                no such dataset or one without prompts and references (batch files:
                ``field="dataset_id"``). Nothing is written.
        """
        with self.session() as session:
            model = session.get(t.ModelRow, model_id)
            if model is None:
                raise InvalidArgument(f"model {model_id!r} not found", field="model_id")
            if model.kind != s.ModelKind.adapter or not model.base_model_id:
                raise InvalidArgument(
                    f"model {model_id} is a base model: an evaluation compares an adapter's "
                    "answers with its base model's", field="model_id")
            data = session.get(t.DatasetRow, request.dataset_id)
            if data is None:
                raise InvalidArgument(f"dataset {request.dataset_id!r} not found",
                                      field="dataset_id")
            if data.format not in EVALUATION_FORMATS:
                raise InvalidArgument(
                    f"dataset {data.id} has format {data.format}: an evaluation needs chats "
                    "or preference pairs (one of "
                    f"{', '.join(sorted(EVALUATION_FORMATS))})", field="dataset_id")
            row = self.evaluations._insert(
                session, request, model_id=model_id, base_model_id=model.base_model_id,
                job_id=job_id, status=s.EvaluationStatus.pending, scores=[], examples=[])
            return s.Evaluation.model_validate(row)

    def start_evaluation(self, evaluation_id: str, ray_job_id: str | None) -> s.Evaluation:
        """Move a pending evaluation to ``running`` in the Ray job ``ray_job_id`` (None
        outside one); one running in that Ray job already is returned as is (a repeated
        call).

        Raises:
            NotFound: no such evaluation.
            InvalidTransition: it ended, or runs in another Ray job (``field`` status or
                ray_job_id); nothing is written.
        """
        with self.session() as session:
            row = self.evaluations._get_row(session, evaluation_id, lock=True)
            fields = claim_fields("evaluation", row, ray_job_id)
            if check_transition(EVALUATION_TRANSITIONS, row.status, s.EvaluationStatus.running):
                for key, value in fields.items():
                    setattr(row, key, value)
                row.status = s.EvaluationStatus.running
                session.flush()
            return s.Evaluation.model_validate(row)

    def complete_evaluation(
        self, evaluation_id: str, scores: Sequence[s.EvaluationScore],
        examples: Sequence[s.EvaluationExample], n: int,
    ) -> s.Evaluation:
        """Record a running evaluation's scores (``n``: examples each model answered) and
        kept examples, mark it completed, write its summary on the adapter's model and on
        the training job that ran it (``evaluation``), and revoke the job tokens bound to
        it.

        Raises:
            NotFound: no such evaluation.
            InvalidTransition: it is not running (``field="status"``).
        """
        with self.session() as session:
            row = self._running(session, evaluation_id)
            row.scores = [score.model_dump(mode="json") for score in scores]
            row.examples = [example.model_dump(mode="json") for example in examples]
            row.n = n
            row.status = s.EvaluationStatus.completed
            row.completed_at = t.utcnow()
            revoke_job_tokens(session, row.id)
            session.flush()
            done = s.Evaluation.model_validate(row)
            summary = done.summary().model_dump(mode="json")
            model = session.get(t.ModelRow, row.model_id, with_for_update=True)
            if model is not None:
                model.evaluation = summary
            if row.job_id is not None:
                job = session.get(t.TrainingJobRow, row.job_id, with_for_update=True)
                if job is not None:
                    job.evaluation = summary
            return done

    def fail_evaluation(self, evaluation_id: str, error: str) -> s.Evaluation:
        """Mark a pending or running evaluation failed with ``error`` (and revoke the job
        tokens bound to it); one that ended is returned as is.

        Raises:
            NotFound: no such evaluation.
        """
        with self.session() as session:
            row = self.evaluations._get_row(session, evaluation_id, lock=True)
            if not is_terminal(EVALUATION_TRANSITIONS, row.status):
                row.status = s.EvaluationStatus.failed
                row.error_message = error
                row.completed_at = t.utcnow()
                revoke_job_tokens(session, row.id)
                session.flush()
            return s.Evaluation.model_validate(row)

    def _running(self, session, evaluation_id: str) -> t.EvaluationRow:
        row = self.evaluations._get_row(session, evaluation_id, lock=True)
        if row.status != s.EvaluationStatus.running:
            raise InvalidTransition(
                f"evaluation {evaluation_id} is {row.status}, not running", field="status")
        return row

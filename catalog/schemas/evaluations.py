"""Evaluations: a base model and its adapter answer the same eval prompts, and the
answers are scored against the references (ROUGE-L, BLEU, exact match:
:mod:`eval_jobs.scoring`).

An evaluation runs as a Ray job (``POST /v1/models/{id}/evaluations``) or at the end of
a training job that has an eval set (``TrainingJobCreate.evaluate``); the answers come
from vLLM through a batch (:mod:`batch_jobs`), which bills its tokens as any batch
does. Its result is kept on the evaluation (scores and the first examples) and, as a
summary, on the adapter's model and the training job (``evaluation``).

Lifecycle: ``pending -> running -> completed | failed``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import Field

from catalog.schemas.common import ID_LENGTH, CreatedAt, Row, Schema, UpdatedAt, UserId

#: Examples an evaluation keeps for inspection (prompt, reference and both answers).
KEPT_EXAMPLES = 10


class EvaluationStatus(enum.StrEnum):
    """Evaluation lifecycle. Terminal: completed, failed."""

    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"


class EvaluationSettings(Schema):
    """How many eval prompts each model answers, and how long an answer may be."""

    n: int = Field(
        50, ge=1, le=1000,
        description="Eval examples answered by each model: the eval set's first n rows "
        "(all of them when it has fewer).")
    max_tokens: int = Field(
        64, ge=1, le=2048,
        description="Longest answer, tokens; decoding is greedy (temperature 0).")


class EvaluationCreate(EvaluationSettings):
    """A request to evaluate an adapter against its base model on a dataset of chats
    (each row's last assistant turn is the reference; preference rows: the chosen
    reply)."""

    dataset_id: str = Field(
        max_length=ID_LENGTH,
        description="The dataset whose rows are the eval prompts and references.")
    user_id: UserId = None


class EvaluationScore(Schema):
    """One metric of the base model's and the adapter's answers, each in [0, 1]."""

    metric: Literal["rouge_l", "bleu", "exact_match"] = Field(
        description="rouge_l: mean ROUGE-L F1 (rouge-score, stemmed); bleu: corpus BLEU-4 "
        "(sacrebleu) / 100; exact_match: share equal after SQuAD normalisation.")
    base: float = Field(description="The base model's score.")
    adapter: float = Field(description="The adapter's score.")


class EvaluationExample(Schema):
    """One eval prompt with its reference and both answers, kept for inspection."""

    prompt: str = Field(description="The last user turn of the prompt.")
    reference: str = Field(description="The reference answer.")
    base: str = Field(description="The base model's answer.")
    adapter: str = Field(description="The adapter's answer.")


class EvaluationSummary(Schema):
    """What a model and a training job carry of their newest completed evaluation."""

    id: str = Field(description="The evaluation's id (GET /v1/evaluations/{id}).")
    dataset_id: str = Field(description="The dataset evaluated on.")
    n: int = Field(ge=0, description="Examples each model answered.")
    scores: list[EvaluationScore] = Field(description="Every metric, base and adapter.")


class Evaluation(EvaluationCreate, Row):
    """An evaluation of an adapter against its base model."""

    model_id: str = Field(description="The adapter evaluated.")
    base_model_id: str = Field(description="Its base model, which answers the same prompts.")
    job_id: str | None = Field(description="The training job that ran it at its end, if any.")
    batch_id: str | None = Field(
        description="The batch that generated the answers (its request counts show the "
        "progress; its usage is what the answers cost).")
    status: EvaluationStatus = Field(description="Lifecycle status.")
    scores: list[EvaluationScore] = Field(description="Every metric once completed.")
    examples: list[EvaluationExample] = Field(
        description=f"The first {KEPT_EXAMPLES} examples with both answers.")
    ray_job_id: str | None = Field(description="The Ray job it runs in.")
    error_message: str | None = Field(description="Why it failed.")
    created_at: CreatedAt
    updated_at: UpdatedAt
    completed_at: datetime | None = Field(description="When it ended (UTC).")

    def summary(self) -> EvaluationSummary:
        """The :class:`EvaluationSummary` a model and a job carry."""
        return EvaluationSummary(id=self.id, dataset_id=self.dataset_id, n=self.n,
                                 scores=self.scores)

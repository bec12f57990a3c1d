"""The model registry: base models and the LoRA adapters trained from them, with their
lineage (seed 002's Model, seed 004's TrainedModel), and a model's lineage graph
(``GET /v1/models/{id}/lineage``)."""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import Field, model_validator

from catalog.schemas.common import ID_LENGTH, NAME_LENGTH, CreatedAt, Row, Schema, UpdatedAt, UserId
from catalog.schemas.datasets import Dataset
from catalog.schemas.evaluations import EvaluationSummary
from catalog.schemas.training import TrainingJob


class ModelKind(enum.StrEnum):
    """``base``: full weights (imported); ``adapter``: a PEFT LoRA adapter of a base model."""

    base = "base"
    adapter = "adapter"


class ModelSpec(Schema):
    """A model's fields, shared by the request and the row (constraints live here)."""

    name: str = Field(min_length=1, max_length=NAME_LENGTH, description="Model name.")
    version: int = Field(1, ge=1, description="Version under name; (name, version) is unique.")
    kind: ModelKind = Field(description="Base weights or a LoRA adapter.")
    path: str = Field(
        min_length=1,
        description="Local folder or object-store URI (for an adapter: its PEFT folder).",
    )
    description: str | None = Field(None, description="Free text about the model.")
    base_model_id: str | None = Field(
        None, max_length=ID_LENGTH, description="Lineage: required for adapters.")
    dataset_id: str | None = Field(
        None, max_length=ID_LENGTH, description="Lineage: the Dataset it was trained on.")
    training_job_id: str | None = Field(
        None, max_length=ID_LENGTH, description="Lineage: the TrainingJob that produced it."
    )
    merged_from_id: str | None = Field(
        None, max_length=ID_LENGTH,
        description="Lineage: the adapter whose LoRA weights were merged into "
        "base_model_id's weights to make this base model.",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Configuration: an adapter's base_model_path, lora and hyperparameters; "
        "a base model's architecture (hidden_size, num_hidden_layers, ...).",
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Final metrics by name (train_loss, eval_loss, eval_loss_before in "
        "nats per token; perplexity; ...).",
    )
    energy_kwh: float | None = Field(None, ge=0, description="Energy spent training it, kWh.")
    emissions_kg: float | None = Field(
        None, ge=0, description="Emissions of training it, kg CO2eq."
    )
    size_bytes: int | None = Field(None, ge=0, description="Size of the files at path, bytes.")
    published: bool = Field(False, description="Released for use (seed 004's IsPublished).")
    user_id: UserId = None


class ModelCreate(ModelSpec):
    """A request to register a model. Raises ``ValueError`` for an adapter without
    ``base_model_id``, or ``merged_from_id`` on an adapter or without ``base_model_id``."""

    @model_validator(mode="after")
    def _adapter_needs_base(self) -> ModelCreate:
        if self.kind == ModelKind.adapter and not self.base_model_id:
            raise ValueError("base_model_id is required for an adapter")
        if self.merged_from_id and (self.kind != ModelKind.base or not self.base_model_id):
            raise ValueError("merged_from_id is for a base model with base_model_id")
        return self


# Derives from ModelSpec, not ModelCreate: the lineage rule is checked when a model is
# registered; a stored row is read back as it is.
class Model(ModelSpec, Row):
    """A registered model."""

    evaluation: EvaluationSummary | None = Field(
        description="An adapter's newest completed evaluation against its base model "
        "(GET /v1/evaluations/{id} has its examples); null before any.")
    created_at: CreatedAt
    updated_at: UpdatedAt


# --------------------------------------------------------------------------- lineage


class LineageNode(Schema):
    """One node of a model's lineage graph."""

    id: str = Field(
        description="The row's id (dataset, training job or model); the serving node's id is "
        "'requests:<model id>'.")
    kind: Literal["dataset", "training_job", "model", "requests"] = Field(
        description="What the node is.")
    label: str = Field(
        description="Human label: dataset 'name vN (R rows)', job 'name (status)', model "
        "'name vN (kind)', requests 'N requests, T tokens'.")


class LineageEdge(Schema):
    """One edge of a model's lineage graph, in the direction data flows (a dataset
    towards the job that trained on it, a model towards the requests it served)."""

    source: str = Field(description="The id of the node it starts from.")
    target: str = Field(description="The id of the node it ends at.")
    label: Literal["trained on", "evaluated on", "produced", "base of", "merged into",
                   "served"] = Field(description="How source relates to target.")


class ServingTotals(Schema):
    """The requests a model has served, summed from the usage records."""

    requests: int = Field(ge=0, description="Usage records (inference requests).")
    prompt_tokens: int = Field(ge=0, description="Prompt tokens.")
    completion_tokens: int = Field(ge=0, description="Completion tokens.")
    cost_usd: float = Field(
        ge=0, description="Cost over the records with a known cost, USD (0 when none has one).")
    energy_kwh: float = Field(ge=0, description="Energy attributed to the requests, kWh.")
    emissions_kg: float = Field(ge=0, description="Emissions attributed, kg CO2eq.")
    scope: Literal["all", "caller"] = Field(
        description="all: every caller's requests (the model's owner or an admin asked); "
        "caller: only the caller's own.")


class ModelLineage(Schema):
    """A model with the rows it came from and went into, its serving totals, and the
    same as a graph (``nodes``, ``edges``) for drawing.

    Related rows the caller may not read (another user's private model, dataset or
    job) and rows since deleted are null or left out of the lists, and have no node.
    Training metrics and carbon are on ``model`` (``metrics``, ``energy_kwh``,
    ``emissions_kg``) and ``training_job`` (``eval_loss_before/after``, ``energy_kwh``,
    ``emissions_kg``).
    """

    model: Model = Field(description="The model asked about.")
    base_model: Model | None = Field(description="model.base_model_id's row.")
    merged_from: Model | None = Field(
        description="model.merged_from_id's row: the adapter merged into this model.")
    dataset: Dataset | None = Field(
        description="The training dataset: model.dataset_id's row, else the job's.")
    eval_dataset: Dataset | None = Field(description="The job's evaluation dataset.")
    training_job: TrainingJob | None = Field(description="model.training_job_id's row.")
    adapters: list[Model] = Field(
        description="For a base model: its adapters the caller may read, newest first "
        "(at most 50); empty for an adapter.")
    merged: list[Model] = Field(description="Models merged from this one that the caller "
                                "may read, newest first (at most 50).")
    serving: ServingTotals = Field(description="The requests it has served.")
    nodes: list[LineageNode] = Field(description="Every row above and the serving node, once.")
    edges: list[LineageEdge] = Field(
        description="Relations between nodes, once each; both ends are in nodes.")

"""The model registry: base models and the LoRA adapters trained from them, with their
lineage (seed 002's Model, seed 004's TrainedModel)."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import Field, model_validator

from catalog.schemas.common import CreatedAt, Row, Schema, UpdatedAt, UserId


class ModelKind(enum.StrEnum):
    """``base``: full weights (imported); ``adapter``: a PEFT LoRA adapter of a base model."""

    base = "base"
    adapter = "adapter"


class ModelSpec(Schema):
    """A model's fields, shared by the request and the row (constraints live here)."""

    name: str = Field(min_length=1, max_length=200, description="Model name.")
    version: int = Field(1, ge=1, description="Version under name; (name, version) is unique.")
    kind: ModelKind = Field(description="Base weights or a LoRA adapter.")
    path: str = Field(
        min_length=1,
        description="Local folder or object-store URI (for an adapter: its PEFT folder).",
    )
    description: str | None = Field(None, description="Free text about the model.")
    base_model_id: str | None = Field(None, description="Lineage: required for adapters.")
    dataset_id: str | None = Field(None, description="Lineage: the Dataset it was trained on.")
    training_job_id: str | None = Field(
        None, description="Lineage: the TrainingJob that produced it."
    )
    merged_from_id: str | None = Field(
        None,
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

    created_at: CreatedAt
    updated_at: UpdatedAt

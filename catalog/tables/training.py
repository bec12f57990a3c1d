"""The training tables: jobs, their metric points, checkpoints and event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from catalog.tables.base import Base, Event, JSONType, Owned, Row, id_column, utcnow


class TrainingJobRow(Owned, Row):
    __tablename__ = "training_jobs"
    id_prefix = "job"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    method: Mapped[str] = mapped_column(String(16), default="sft", server_default="sft")
    base_model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="RESTRICT"), index=True
    )
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    eval_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT")
    )
    eval_fraction: Mapped[float] = mapped_column(Float, default=0.1)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lora: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quantization: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scaling: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resume_from_checkpoint: Mapped[str | None] = mapped_column(Text)
    country_iso_code: Mapped[str] = mapped_column(String(3), default="USA")
    output_model_name: Mapped[str | None] = mapped_column(String(200))
    report_to: Mapped[list[Any]] = mapped_column(JSONType, default=list, server_default="[]")
    ray_job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    output_model_id: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    energy_kwh: Mapped[float | None] = mapped_column(Float)
    emissions_kg: Mapped[float | None] = mapped_column(Float)
    eval_loss_before: Mapped[float | None] = mapped_column(Float)
    eval_loss_after: Mapped[float | None] = mapped_column(Float)
    evaluate: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # progress of a running job (the trainer's state), 0 until it is sized
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    current_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    current_epoch: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    total_epochs: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()


class JobMetricRow(Base):
    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    perplexity: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    memory_mb: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobCheckpointRow(Base):
    __tablename__ = "job_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEventRow(Event, Base):
    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )

"""Ray dashboard / Prometheus metrics of training jobs, emitted by the job's driver
(:mod:`train_jobs.run`) and its Ray Train callback (:mod:`train_jobs.callbacks`).

Every metric is a ``ray.util.metrics`` object named ``garden_*``; Ray exports it on each
node's metrics port (prefixed ``ray_``) for the dashboard's Metrics view and Prometheus.
They are created lazily on first use in each process, never at import:
``ray.util.metrics`` needs a connected worker. ``garden_emissions_kg_total`` is shared
with the Serve apps' request metrics (:mod:`serve_apps.observability`); this module
counts its ``source="training"`` series.

Tags: ``job_id`` (catalog training job id), ``status`` (job status), ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ray.util.metrics import Counter, Gauge


@dataclass(frozen=True)
class _TrainingMetrics:
    loss: Gauge
    tokens_per_s: Gauge
    jobs: Counter
    emissions: Counter


@cache
def _metrics() -> _TrainingMetrics:
    return _TrainingMetrics(
        loss=Gauge(
            "garden_training_loss", "Latest training loss of a job.", tag_keys=("job_id",),
        ),
        tokens_per_s=Gauge(
            "garden_training_tokens_per_second", "Training throughput in tokens/s.",
            tag_keys=("job_id",),
        ),
        jobs=Counter(
            "garden_training_job_transitions_total", "Training jobs entering each status.",
            tag_keys=("status",),
        ),
        emissions=Counter(
            "garden_emissions_kg_total", "Estimated emissions in kg CO2eq.",
            tag_keys=("source",),
        ),
    )


def record_training_step(job_id: str, *, loss: float | None, tokens_per_s: float | None) -> None:
    """Publish a training job's latest loss and throughput (tokens/s); None skips one."""
    m = _metrics()
    if loss is not None:
        m.loss.set(loss, tags={"job_id": job_id})
    if tokens_per_s is not None:
        m.tokens_per_s.set(tokens_per_s, tags={"job_id": job_id})


def record_job_status(status: str) -> None:
    """Count a training job entering ``status`` (a :class:`catalog.schemas.JobStatus`)."""
    _metrics().jobs.inc(1, tags={"status": status})


def record_training_emissions(emissions_kg: float) -> None:
    """Add a training job's measured emissions (kg CO2eq, from codecarbon)."""
    if emissions_kg:
        _metrics().emissions.inc(emissions_kg, tags={"source": "training"})

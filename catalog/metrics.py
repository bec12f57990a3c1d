"""Ray dashboard / Prometheus metrics shared by training jobs and Serve replicas.

All metrics are ``ray.util.metrics`` objects named ``garden_*``; Ray exports them
on each node's metrics port, so they appear in the dashboard's Metrics view and
in Prometheus. They are created lazily on first use in each process (never at
import: ``ray.util.metrics`` needs a connected worker).

Tags: ``model`` (base model name or adapter name), ``kind`` (``llm`` or
``media``), ``status`` (HTTP status class or job status), ``job_id``.
"""

from __future__ import annotations

from functools import cache

from ray.util.metrics import Counter, Gauge, Histogram

#: Latency buckets in seconds (LLM requests on CPU take up to minutes).
LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]


@cache
def _metrics() -> dict:
    return {
        "requests": Counter(
            "garden_requests_total", "Inference and media requests served.",
            tag_keys=("model", "kind", "status"),
        ),
        "tokens": Counter(
            "garden_tokens_total", "Tokens processed, by direction (prompt or completion).",
            tag_keys=("model", "direction"),
        ),
        "latency": Histogram(
            "garden_request_latency_seconds", "End-to-end request latency in seconds.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=("model", "kind"),
        ),
        "ttft": Histogram(
            "garden_time_to_first_token_seconds", "Time to first streamed token in seconds.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=("model",),
        ),
        "emissions": Counter(
            "garden_emissions_kg_total", "Estimated emissions in kg CO2eq.",
            tag_keys=("source",),
        ),
        "train_loss": Gauge(
            "garden_training_loss", "Latest training loss of a job.", tag_keys=("job_id",),
        ),
        "train_tokens_per_s": Gauge(
            "garden_training_tokens_per_second", "Training throughput in tokens/s.",
            tag_keys=("job_id",),
        ),
        "jobs": Counter(
            "garden_training_job_transitions_total", "Training jobs entering each status.",
            tag_keys=("status",),
        ),
    }


def record_request(
    model: str, *, kind: str = "llm", status: int | str = 200, latency_s: float = 0.0,
    prompt_tokens: int = 0, completion_tokens: int = 0, ttft_s: float | None = None,
    emissions_kg: float = 0.0,
) -> None:
    """Count one finished request with its latency (s), tokens and emissions (kg)."""
    m = _metrics()
    status_class = f"{str(status)[0]}xx" if str(status).isdigit() else str(status)
    m["requests"].inc(1, tags={"model": model, "kind": kind, "status": status_class})
    m["latency"].observe(latency_s, tags={"model": model, "kind": kind})
    if prompt_tokens:
        m["tokens"].inc(prompt_tokens, tags={"model": model, "direction": "prompt"})
    if completion_tokens:
        m["tokens"].inc(completion_tokens, tags={"model": model, "direction": "completion"})
    if ttft_s is not None:
        m["ttft"].observe(ttft_s, tags={"model": model})
    if emissions_kg:
        m["emissions"].inc(emissions_kg, tags={"source": "inference" if kind == "llm" else kind})


def record_training_step(job_id: str, *, loss: float | None, tokens_per_s: float | None) -> None:
    """Publish a training job's latest loss and throughput (tokens/s)."""
    m = _metrics()
    if loss is not None:
        m["train_loss"].set(loss, tags={"job_id": job_id})
    if tokens_per_s is not None:
        m["train_tokens_per_s"].set(tokens_per_s, tags={"job_id": job_id})


def record_job_status(status: str) -> None:
    """Count a training job entering ``status``."""
    _metrics()["jobs"].inc(1, tags={"status": status})


def record_training_emissions(emissions_kg: float) -> None:
    """Add a training job's measured emissions (kg CO2eq)."""
    if emissions_kg:
        _metrics()["emissions"].inc(emissions_kg, tags={"source": "training"})

"""Ray dashboard / Prometheus metrics of the Serve apps' requests (gateway, LLM, media).

Every metric is a ``ray.util.metrics`` object named ``garden_*``; Ray exports it on each
node's metrics port (prefixed ``ray_``), so it appears in the dashboard's Metrics view
and in Prometheus. They are created lazily on first use in each process, never at
import: ``ray.util.metrics`` needs a connected worker. The training jobs' metrics live
where they are emitted, in :mod:`train_jobs.metrics`.

Tags: ``model`` (base model or adapter name, ``gateway`` for REST calls), ``kind``
(``api``, ``llm`` or ``media``), ``status`` (HTTP status class such as ``2xx``),
``direction`` (``prompt`` or ``completion``), ``source`` (``inference`` or the kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ray.util.metrics import Counter, Histogram

#: Latency buckets in seconds (LLM requests on CPU take up to minutes).
LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]


@dataclass(frozen=True)
class _RequestMetrics:
    requests: Counter
    tokens: Counter
    latency: Histogram
    ttft: Histogram
    emissions: Counter


@cache
def _metrics() -> _RequestMetrics:
    return _RequestMetrics(
        requests=Counter(
            "garden_requests_total", "Inference and media requests served.",
            tag_keys=("model", "kind", "status"),
        ),
        tokens=Counter(
            "garden_tokens_total", "Tokens processed, by direction (prompt or completion).",
            tag_keys=("model", "direction"),
        ),
        latency=Histogram(
            "garden_request_latency_seconds", "End-to-end request latency in seconds.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=("model", "kind"),
        ),
        ttft=Histogram(
            "garden_time_to_first_token_seconds", "Time to first streamed token in seconds.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=("model",),
        ),
        emissions=Counter(
            "garden_emissions_kg_total", "Estimated emissions in kg CO2eq.",
            tag_keys=("source",),
        ),
    )


def record_request(
    model: str, *, kind: str = "llm", status: int | str = 200, latency_s: float = 0.0,
    prompt_tokens: int = 0, completion_tokens: int = 0, ttft_s: float | None = None,
    emissions_kg: float = 0.0,
) -> None:
    """Count one finished request with its latency (s), tokens, time to first token (s)
    and estimated emissions (kg CO2eq). ``status`` is an HTTP status (counted by class,
    ``2xx``) or a label kept as is."""
    m = _metrics()
    status_class = f"{str(status)[0]}xx" if str(status).isdigit() else str(status)
    m.requests.inc(1, tags={"model": model, "kind": kind, "status": status_class})
    m.latency.observe(latency_s, tags={"model": model, "kind": kind})
    if prompt_tokens:
        m.tokens.inc(prompt_tokens, tags={"model": model, "direction": "prompt"})
    if completion_tokens:
        m.tokens.inc(completion_tokens, tags={"model": model, "direction": "completion"})
    if ttft_s is not None:
        m.ttft.observe(ttft_s, tags={"model": model})
    if emissions_kg:
        m.emissions.inc(emissions_kg, tags={"source": "inference" if kind == "llm" else kind})

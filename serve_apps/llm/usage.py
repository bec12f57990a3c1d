"""One request's accounting: tokens, latency, time to first token, energy and CO2.

:meth:`RequestAccount.submit` sends a :class:`catalog.schemas.UsageCreate` to the
catalog actor, which batches usage writes (``CatalogActor.record_usage``); the
call is fire-and-forget so the response never waits on the database. It also
publishes the request to the dashboard metrics (:func:`serve_apps.observability.record_request`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from catalog import schemas as s
from catalog.port import AsyncCatalogPort
from serve_apps import observability
from serve_apps.llm.energy import EnergyShare


@dataclass
class RequestAccount:
    """Accumulates one request's numbers while it runs (times from ``time.perf_counter``).

    ``ttft_s`` is the time to the first streamed chunk; for a non-streaming request
    it is the time to the whole response (the client sees nothing earlier).
    """

    route: str
    base: str
    served: str
    adapter_id: str | None
    start: float
    stream: bool = False
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    latency_ms: float = 0.0
    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    id: str = field(default_factory=lambda: f"use_{uuid.uuid4().hex[:20]}")

    def first_token(self) -> None:
        """Note the first output's time (once)."""
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.start

    def set_usage(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Token counts as the engine reported them."""
        self.prompt_tokens = int(prompt_tokens or 0)
        self.completion_tokens = int(completion_tokens or 0)

    def finish(self, share: EnergyShare) -> None:
        """Close the account with the end time and the request's energy share."""
        self.latency_ms = (time.perf_counter() - self.start) * 1000
        self.energy_kwh = share.energy_kwh
        self.emissions_kg = share.emissions_kg

    def record(self) -> s.UsageCreate:
        """The catalog usage record (``model`` = base name, ``adapter`` = served adapter name)."""
        return s.UsageCreate(
            id=self.id, kind="llm", model=self.base,
            adapter=self.served if self.adapter_id else None,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            latency_ms=self.latency_ms,
            ttft_ms=self.ttft_s * 1000 if self.ttft_s is not None else None,
            energy_kwh=self.energy_kwh, emissions_kg=self.emissions_kg,
            details={"route": self.route, "status": self.status, "stream": self.stream,
                     "adapter_id": self.adapter_id,
                     "attribution": "equal share of codecarbon energy among concurrent "
                                    "requests (serve_apps.llm.energy)"},
        )

    def submit(self, catalog: AsyncCatalogPort) -> None:
        """Send the record to the catalog actor without waiting; publish metrics."""
        catalog.submit_usage([self.record()])
        observability.record_request(
            self.served, kind="llm", status=self.status, latency_s=self.latency_ms / 1000,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            ttft_s=self.ttft_s, emissions_kg=self.emissions_kg,
        )

"""One request's accounting: who, tokens, latency, time to first token, energy and CO2.

:meth:`RequestAccount.submit` sends a :class:`catalog.schemas.UsageCreate` to the
catalog actor, which batches usage writes (``CatalogActor.record_usage``); the
call is fire-and-forget so the response never waits on the database; the buffer first
appends the record to the replica's local journal (:mod:`catalog.usage_journal`), so a
killed replica loses no record of what it answered. It also
publishes the request to the dashboard metrics (:func:`serve_apps.observability.record_request`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from catalog import schemas as s
from catalog.usage_buffer import UsageBuffer
from serve_apps import observability
from serve_apps.llm.energy import EnergyShare


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the ingress authenticated it: the user and the catalog API
    key id (None for the bootstrap admin key)."""

    user_id: str | None = None
    api_key_id: str | None = None


class Tally(NamedTuple):
    """What the ingress needs of a finished stream: token counts (for the key's limits)
    and the request's emissions in grams CO2eq."""

    prompt_tokens: int
    completion_tokens: int
    carbon_emissions_g: float


class TalliedChunk(str):
    """An SSE chunk (a ``str``, sent to the client as is) that also carries its stream's
    :class:`Tally` in ``tally``, so the engine tells the ingress the tokens without a
    message of their own. Pickles with the attribute (a ``str`` subclass keeps its
    ``__dict__``)."""

    tally: Tally


@dataclass
class RequestAccount:
    """Accumulates one request's numbers while it runs (times from ``time.perf_counter``).

    ``ttft_s`` is the time to the first streamed chunk; for a non-streaming request
    it is the time to the whole response (the client sees nothing earlier).
    ``model_id`` is the catalog id of what answered: the adapter's for an adapter
    request, the base model's otherwise, so an adapter's energy is charged to it.
    """

    route: str
    base: str
    served: str
    adapter_id: str | None
    start: float
    model_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    stream: bool = False
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    latency_ms: float = 0.0
    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    id: str = field(default_factory=lambda: f"use_{uuid.uuid4().hex[:20]}")
    request_id: str | None = None  # the response's id (chatcmpl-..., cmpl-...)
    finished_at: datetime | None = None
    submitted: bool = False

    def first_token(self) -> None:
        """Note the first output's time (once)."""
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.start

    def set_usage(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Token counts as the engine reported them."""
        self.prompt_tokens = int(prompt_tokens or 0)
        self.completion_tokens = int(completion_tokens or 0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def carbon_emissions_g(self) -> float:
        """The request's emissions in grams CO2eq (the responses' ``carbon_emissions_g``)."""
        return self.emissions_kg * 1000

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def finish(self, share: EnergyShare) -> None:
        """Close the account with the end time and the request's energy share (once)."""
        if self.finished_at is not None:
            return
        self.finished_at = datetime.now(UTC)
        self.latency_ms = (time.perf_counter() - self.start) * 1000
        self.energy_kwh = share.energy_kwh
        self.emissions_kg = share.emissions_kg

    def record(self) -> s.UsageCreate:
        """The catalog usage record (``model`` = base name, ``adapter`` = served adapter
        name, ``model_id`` = the catalog id of what answered)."""
        return s.UsageCreate(
            id=self.id, kind="llm", model=self.base, model_id=self.model_id,
            adapter=self.served if self.adapter_id else None,
            user_id=self.user_id, api_key_id=self.api_key_id, created_at=self.finished_at,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            latency_ms=self.latency_ms,
            ttft_ms=self.ttft_s * 1000 if self.ttft_s is not None else None,
            energy_kwh=self.energy_kwh, emissions_kg=self.emissions_kg,
            # energy: an equal share of codecarbon's measurement among concurrent
            # requests (serve_apps.llm.energy)
            details={"route": self.route, "status": self.status, "stream": self.stream}
            | ({"request_id": self.request_id} if self.request_id else {}),
        )

    def tally(self) -> Tally:
        """What the ingress needs of a finished request (limits, the response's CO2)."""
        return Tally(self.prompt_tokens, self.completion_tokens, self.carbon_emissions_g)

    def submit(self, usage: UsageBuffer) -> None:
        """Hand the record to the replica's usage buffer (its journal write, then memory;
        never waits on the catalog) and publish metrics, once: later calls do nothing.
        Called before the response's last bytes leave the replica, so what a client
        received is journaled."""
        if self.submitted:
            return
        self.submitted = True
        usage.add(self.record())
        observability.record_request(
            self.served, kind="llm", status=self.status, latency_s=self.latency_ms / 1000,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            ttft_s=self.ttft_s, emissions_kg=self.emissions_kg,
        )

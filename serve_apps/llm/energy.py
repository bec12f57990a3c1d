"""Per-request share of the engine replica's measured energy and CO2.

Attribution method (equal share among concurrent requests):
    codecarbon (``OfflineEmissionsTracker``) measures the replica host's energy
    E(t) in kWh and converts it to CO2 with the grid intensity of the configured
    country. Every ``sample_s`` seconds the meter reads E(t) and sets the power
    P = dE/dt. Between events (a request starts or ends, or a new sample) it adds
    P * dt / n to a running integral A(t), where n is the number of requests in
    flight; a request's energy is A(end) - A(start), i.e. an equal share of the
    measured power for the time it was running. Energy measured while no request
    runs (idle) is not attributed to any request. CO2 = energy * (codecarbon's
    cumulative kg CO2 / kWh for this tracker).

    This is the "ratio" attribution of Kepler (CNCF, github.com/sustainable-computing-io/kepler,
    docs "Power model: ratio") with request concurrency as the ratio, and codecarbon
    (docs.codecarbon.io, "Methodology") as the energy source. Without RAPL, codecarbon
    estimates CPU power from load and its TDP table (4 W per thread when the CPU is
    unknown), so these figures are estimates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from catalog.energy import Meter

log = logging.getLogger(__name__)


@dataclass
class EnergyShare:
    """A request's share: energy in kWh and emissions in kg CO2eq."""

    energy_kwh: float
    emissions_kg: float


class EnergyMeter:
    """Fair-share energy accounting over one codecarbon meter (:class:`catalog.energy.Meter`,
    one per engine replica).

    Args:
        country_iso_code: ISO 3166 alpha-3 code for the grid intensity (offline mode).
        sample_s: seconds between codecarbon reads.
    """

    def __init__(self, country_iso_code: str = "FRA", sample_s: float = 2.0):
        self._sample_s = sample_s
        self._meter = Meter("garden-llm", country_iso_code, max(sample_s, 1.0))
        self._task: asyncio.Task | None = None
        self._power_w = 0.0
        self._integral_j = 0.0  # A(t): joules per in-flight request so far
        self._active = 0
        self._last_event = time.monotonic()
        self._last_energy_kwh = 0.0
        self._last_sample = time.monotonic()
        self._kg_per_kwh = 0.0

    def start(self) -> None:
        """Start the meter and the sampling task (call inside the replica's event loop)."""
        self._meter.start()
        self._task = asyncio.get_running_loop().create_task(self._sample_forever())

    def stop(self) -> None:
        """Stop sampling and the meter."""
        if self._task is not None:
            self._task.cancel()
        self._meter.stop()

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sample_s)
            try:
                reading = await asyncio.to_thread(self._meter.read)
            except (OSError, RuntimeError, ValueError) as exc:
                log.warning("codecarbon read failed: %s", exc)
                continue
            now = time.monotonic()
            self._advance(now)
            dt = now - self._last_sample
            energy_kwh = reading.energy_kwh
            if dt > 0 and energy_kwh >= self._last_energy_kwh:
                self._power_w = (energy_kwh - self._last_energy_kwh) * 3.6e6 / dt
            self._last_energy_kwh, self._last_sample = energy_kwh, now
            if energy_kwh > 0:
                self._kg_per_kwh = reading.emissions_kg / energy_kwh

    def _advance(self, now: float) -> None:
        if self._active:
            self._integral_j += self._power_w * (now - self._last_event) / self._active
        self._last_event = now

    def begin(self) -> float:
        """Mark a request as started; returns its token for :meth:`end`."""
        now = time.monotonic()
        self._advance(now)
        self._active += 1
        return self._integral_j

    def end(self, token: float) -> EnergyShare:
        """Mark the request started with ``token`` as finished; returns its share."""
        now = time.monotonic()
        self._advance(now)
        self._active = max(self._active - 1, 0)
        energy_kwh = max(self._integral_j - token, 0.0) / 3.6e6
        return EnergyShare(energy_kwh, energy_kwh * self._kg_per_kwh)

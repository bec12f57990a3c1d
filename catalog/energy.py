"""The one codecarbon meter of the project: :class:`Meter`, an ``OfflineEmissionsTracker``
measuring this whole machine (``tracking_mode="machine"``: CPU, GPU and RAM power of the
host), priced with codecarbon's bundled carbon intensity of a country's grid (no network),
writing no file. A training job's nodes (``train_jobs.carbon``), a batch's driver
(``batch_jobs.carbon``) and each LLM engine replica (``serve_apps.llm.energy``) build
theirs here. codecarbon is imported when a meter starts, not with this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reading:
    """Totals since :meth:`Meter.start`: energy (kWh) and emissions (kg CO2eq)."""

    energy_kwh: float = 0.0
    emissions_kg: float = 0.0


class Meter:
    """A codecarbon tracker measuring this machine from :meth:`start` on.

    Args:
        project: codecarbon's project name (``garden-train-<job id>``, say).
        country_iso_code: ISO 3166 alpha-3 code of the grid whose intensity prices the
            energy.
        measure_power_secs: codecarbon's sampling period, s.
        output_handlers: codecarbon output handlers, given the ``EmissionsData`` of each
            :meth:`read` and of :meth:`stop`.
    """

    def __init__(self, project: str, country_iso_code: str, measure_power_secs: float,
                 output_handlers: list[Any] | None = None):
        self.project = project
        self.country_iso_code = country_iso_code
        self.measure_power_secs = measure_power_secs
        self.output_handlers = output_handlers or []
        self.tracker: Any = None

    def start(self) -> None:
        """Build and start the tracker. Raises whatever codecarbon raises (no readable
        power source, say)."""
        from codecarbon import OfflineEmissionsTracker

        # api_call_interval=-1: no live writes to the output handlers between reads, so
        # each delta they get spans the time since the previous read
        self.tracker = OfflineEmissionsTracker(
            project_name=self.project, country_iso_code=self.country_iso_code,
            measure_power_secs=self.measure_power_secs, save_to_file=False,
            log_level="error", allow_multiple_runs=True, tracking_mode="machine",
            output_handlers=self.output_handlers, api_call_interval=-1)
        self.tracker.start()

    def read(self) -> Reading:
        """Totals measured since start, up to now (codecarbon's ``flush``). Raises
        whatever codecarbon raises."""
        emissions_kg = self.tracker.flush()
        # codecarbon 3.x keeps the cumulative energy in ``_total_energy`` (an Energy in
        # kWh); flush() returns only the emissions
        return Reading(float(self.tracker._total_energy.kWh), float(emissions_kg or 0.0))

    def stop(self) -> None:
        """Stop measuring (a last write to the output handlers)."""
        if self.tracker is not None:
            self.tracker.stop()
            self.tracker = None

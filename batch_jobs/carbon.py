"""Energy and emissions of a batch: one codecarbon ``OfflineEmissionsTracker`` in the
batch's driver, measuring the machine (``tracking_mode="machine"``: CPU, GPU and RAM of
the host, where the engine actor runs on a one-node cluster), priced with codecarbon's
bundled grid intensity of ``country_iso_code`` (no network).

The energy measured between two reads is shared over the lines answered in between in
proportion to their tokens (prompt + completion), so the per-line usage records sum to
the batch's total (:func:`share`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("batch_jobs.carbon")


@dataclass
class Reading:
    """Totals since :meth:`BatchEnergy.start`: energy (kWh) and emissions (kg CO2eq)."""

    energy_kwh: float = 0.0
    emissions_kg: float = 0.0


class BatchEnergy:
    """A codecarbon tracker over one batch run. A tracker that cannot start (no power
    source readable) leaves every reading at zero, with a warning: a batch never fails
    over its measurement."""

    def __init__(self, batch_id: str, country_iso_code: str = "FRA",
                 measure_power_secs: float = 5.0):
        self.batch_id = batch_id
        self.country_iso_code = country_iso_code
        self.measure_power_secs = measure_power_secs
        self._tracker: Any = None
        self.last = Reading()

    def start(self) -> None:
        """Start measuring."""
        try:
            from codecarbon import OfflineEmissionsTracker

            self._tracker = OfflineEmissionsTracker(
                project_name=f"garden-batch-{self.batch_id}",
                country_iso_code=self.country_iso_code,
                measure_power_secs=self.measure_power_secs, save_to_file=False,
                log_level="error", allow_multiple_runs=True, tracking_mode="machine",
                api_call_interval=-1)
            self._tracker.start()
        except Exception as exc:  # codecarbon raises many kinds; the batch must not fail
            log.warning("codecarbon could not start, energy reads 0: %s", exc)
            self._tracker = None

    def read(self) -> Reading:
        """Totals measured so far (codecarbon's ``flush``)."""
        if self._tracker is None:
            return self.last
        try:
            emissions = self._tracker.flush()
            # codecarbon 3.x keeps the cumulative energy in ``_total_energy`` (kWh)
            energy = float(self._tracker._total_energy.kWh)
        except Exception as exc:  # a failed read keeps the last totals
            log.warning("codecarbon read failed: %s", exc)
            return self.last
        self.last = Reading(max(energy, self.last.energy_kwh),
                            max(float(emissions or 0.0), self.last.emissions_kg))
        return self.last

    def stop(self) -> Reading:
        """A last read, then stop the tracker."""
        reading = self.read()
        if self._tracker is not None:
            try:
                self._tracker.stop()
            except Exception as exc:
                log.warning("codecarbon stop failed: %s", exc)
            self._tracker = None
        return reading


def share(total: float, weights: list[int]) -> list[float]:
    """``total`` split in proportion to ``weights`` (equal parts when they sum to 0)."""
    if not weights:
        return []
    whole = sum(weights)
    if whole <= 0:
        return [total / len(weights)] * len(weights)
    return [total * w / whole for w in weights]

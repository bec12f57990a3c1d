"""Energy and emissions of a batch: one codecarbon meter (:class:`catalog.energy.Meter`)
in the batch's driver, measuring the machine (CPU, GPU and RAM of the host, where the
engine actor runs on a one-node cluster), priced with codecarbon's bundled grid intensity
of ``country_iso_code`` (no network).

The energy measured between two reads is shared over the lines answered in between in
proportion to their tokens (prompt + completion), so the per-line usage records sum to
the batch's total (:func:`share`).
"""

from __future__ import annotations

import logging

from catalog.energy import Meter, Reading

log = logging.getLogger("batch_jobs.carbon")


class BatchEnergy:
    """A meter over one batch run. A meter that cannot start (no power source readable)
    leaves every reading at zero, with a warning: a batch never fails over its
    measurement; a failed read keeps the last totals."""

    def __init__(self, batch_id: str, country_iso_code: str = "FRA",
                 measure_power_secs: float = 5.0):
        self._meter: Meter | None = Meter(f"garden-batch-{batch_id}", country_iso_code,
                                          measure_power_secs)
        self.last = Reading()

    def start(self) -> None:
        """Start measuring."""
        try:
            if self._meter is not None:
                self._meter.start()
        except Exception as exc:  # codecarbon raises many kinds; the batch must not fail
            log.warning("codecarbon could not start, energy reads 0: %s", exc)
            self._meter = None

    def read(self) -> Reading:
        """Totals measured so far, never below the previous read's."""
        if self._meter is None or self._meter.tracker is None:
            return self.last
        try:
            reading = self._meter.read()
        except Exception as exc:  # a failed read keeps the last totals
            log.warning("codecarbon read failed: %s", exc)
            return self.last
        self.last = Reading(max(reading.energy_kwh, self.last.energy_kwh),
                            max(reading.emissions_kg, self.last.emissions_kg))
        return self.last

    def stop(self) -> Reading:
        """A last read, then stop the meter."""
        reading = self.read()
        if self._meter is not None:
            try:
                self._meter.stop()
            except Exception as exc:
                log.warning("codecarbon stop failed: %s", exc)
            self._meter = None
        return reading


def share(total: float, weights: list[int]) -> list[float]:
    """``total`` split in proportion to ``weights`` (equal parts when they sum to 0)."""
    if not weights:
        return []
    whole = sum(weights)
    if whole <= 0:
        return [total / len(weights)] * len(weights)
    return [total * w / whole for w in weights]

"""Energy and emissions of a training job: one codecarbon tracker per Ray node.

codecarbon measures the whole machine (CPU, GPU and RAM power of the host), so a
tracker per worker would count a node several times. ``NodeCarbon`` starts one
zero-CPU actor pinned to each alive node (``NodeAffinitySchedulingStrategy``)
holding an ``OfflineEmissionsTracker(country_iso_code=...)``, which needs no
network (carbon intensity from codecarbon's bundled energy-mix table), and sums
their energy (kWh) and emissions (kg CO2eq) at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray

#: codecarbon's default sampling period is 15 s; short test jobs need a finer one.
MEASURE_POWER_SECS = 5.0


@dataclass
class CarbonTotals:
    energy_kwh: float
    emissions_kg: float
    duration_s: float
    nodes: int


@ray.remote(num_cpus=0)
class NodeTracker:
    """One codecarbon tracker on the node this actor is pinned to."""

    def __init__(self, job_id: str, country_iso_code: str):
        from codecarbon import OfflineEmissionsTracker

        self.tracker = OfflineEmissionsTracker(
            project_name=f"garden-train-{job_id}", country_iso_code=country_iso_code,
            measure_power_secs=MEASURE_POWER_SECS, save_to_file=False, log_level="error",
            allow_multiple_runs=True, tracking_mode="machine",
        )
        self.tracker.start()

    def stop(self) -> tuple[float, float, float]:
        """Stop measuring; return ``(energy kWh, emissions kg, duration s)``."""
        emissions = self.tracker.stop() or 0.0
        data = self.tracker.final_emissions_data
        energy = float(data.energy_consumed) if data is not None else 0.0
        duration = float(data.duration) if data is not None else 0.0
        return energy, float(emissions), duration


class NodeCarbon:
    """Start a tracker on every alive node; :meth:`stop` returns the job's totals.

    Args:
        job_id: names the codecarbon project.
        country_iso_code: 3-letter ISO code for the grid's carbon intensity.
        timeout_s: longest wait for the trackers to start or stop.
    """

    def __init__(self, job_id: str, country_iso_code: str, *, timeout_s: float = 120.0):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.timeout_s = timeout_s
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        self.trackers = [
            NodeTracker.options(  # type: ignore[attr-defined]  # a Ray actor class
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
            ).remote(job_id, country_iso_code)
            for node in nodes
        ]
        # Wait until every tracker runs, so the measurement covers the whole job.
        ray.get([t.__ray_ready__.remote() for t in self.trackers], timeout=timeout_s)

    def stop(self) -> CarbonTotals:
        """Stop all trackers and sum them. Raises ``GetTimeoutError`` after ``timeout_s``."""
        results = ray.get([t.stop.remote() for t in self.trackers], timeout=self.timeout_s)
        for tracker in self.trackers:
            ray.kill(tracker)
        return CarbonTotals(
            energy_kwh=sum(r[0] for r in results),
            emissions_kg=sum(r[1] for r in results),
            duration_s=max((r[2] for r in results), default=0.0),
            nodes=len(results),
        )

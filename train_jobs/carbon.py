"""Energy and emissions of a training job: one codecarbon tracker per node it runs on.

codecarbon measures the whole machine (CPU, GPU and RAM power of the host), so a
tracker per worker would count a node several times. The lowest-ranked worker on each
node (one per node, whatever the number of GPUs) runs one :class:`NodeEnergy`;
its running totals ride on the worker's metric reports, and the Ray Train callback
(:mod:`train_jobs.callbacks`) keeps one carbon record per node of the job, rewritten
with each report (:func:`node_record`). A node lost mid-job keeps what it reported;
a node the job moves to starts its own tracker. The job's energy is the sum over its
nodes (:func:`job_totals`).

``OfflineEmissionsTracker(country_iso_code=...)`` needs no network: the carbon
intensity comes from codecarbon's bundled energy-mix table.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from catalog import schemas as s
from catalog.port import CatalogPort

#: codecarbon's default sampling period is 15 s; short test jobs need a finer one.
MEASURE_POWER_SECS = 5.0
TOOL = "codecarbon OfflineEmissionsTracker"


@dataclass
class CarbonTotals:
    """A job's energy (kWh), emissions (kg CO2eq), longest node measurement (s), and
    the number of nodes measured."""

    energy_kwh: float
    emissions_kg: float
    duration_s: float
    nodes: int


class NodeEnergy:
    """A codecarbon tracker measuring this machine from now on.

    Args:
        job_id: names the codecarbon project.
        country_iso_code: 3-letter ISO code for the grid's carbon intensity.
        node_id: the node measured (Ray's node id, or the host name).
    """

    def __init__(self, job_id: str, country_iso_code: str, node_id: str):
        from codecarbon import OfflineEmissionsTracker

        self.node_id = node_id
        #: one id per tracker: a worker group restarted on the same node starts another
        self.session = uuid.uuid4().hex
        self.tracker = OfflineEmissionsTracker(
            project_name=f"garden-train-{job_id}", country_iso_code=country_iso_code,
            measure_power_secs=MEASURE_POWER_SECS, save_to_file=False, log_level="error",
            allow_multiple_runs=True, tracking_mode="machine",
        )
        self.tracker.start()

    def totals(self) -> dict[str, Any]:
        """Running totals since start: ``{"node_id", "session", "energy_kwh",
        "emissions_kg", "duration_s"}``. ``flush`` measures up to now; the energy is read
        from the emissions data codecarbon computes for it (no public getter exists)."""
        emissions = self.tracker.flush()
        return self._totals(emissions, self.tracker._prepare_emissions_data())

    def stop(self) -> dict[str, Any]:
        """Stop measuring; the final totals (as :meth:`totals`)."""
        emissions = self.tracker.stop()
        return self._totals(emissions, self.tracker.final_emissions_data)

    def _totals(self, emissions: float | None, data: Any) -> dict[str, Any]:
        return {"node_id": self.node_id, "session": self.session,
                "energy_kwh": float(data.energy_consumed) if data is not None else 0.0,
                "emissions_kg": float(emissions or 0.0),
                "duration_s": float(data.duration) if data is not None else 0.0}


def record_id(job_id: str, node_id: str) -> str:
    """The carbon record id of one node of one job (stable, so rewrites replace it)."""
    return "co2_" + hashlib.sha256(f"{job_id}/{node_id}".encode()).hexdigest()[:32]


class NodeSessions:
    """The latest totals of every tracker session of a job, summed per node."""

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, Any]] = {}

    def update(self, totals: dict[str, Any]) -> str:
        """Keep a session's newest totals; returns its node id."""
        self._sessions[totals["session"]] = totals
        return totals["node_id"]

    def node(self, node_id: str) -> dict[str, float]:
        """``{"energy_kwh", "emissions_kg", "duration_s", "sessions"}`` of one node."""
        mine = [t for t in self._sessions.values() if t["node_id"] == node_id]
        return {"energy_kwh": sum(t["energy_kwh"] for t in mine),
                "emissions_kg": sum(t["emissions_kg"] for t in mine),
                "duration_s": sum(t["duration_s"] for t in mine), "sessions": len(mine)}


def node_record(job: s.TrainingJob, node_id: str, sums: dict[str, float],
                model_id: str | None = None) -> s.CarbonCreate:
    """The carbon record of one node of ``job`` (id :func:`record_id`)."""
    return s.CarbonCreate(
        id=record_id(job.id, node_id), source=s.CarbonSource.training,
        energy_kwh=sums["energy_kwh"], emissions_kg=sums["emissions_kg"],
        duration_s=sums["duration_s"], training_job_id=job.id, model_id=model_id,
        country_iso_code=job.country_iso_code, user_id=job.user_id,
        details={"node_id": node_id, "sessions": int(sums.get("sessions", 1)), "tool": TOOL},
    )


def job_records(cat: CatalogPort, job_id: str) -> list[s.CarbonRecord]:
    """Every carbon record of a job (one per node it ran on)."""
    out: list[s.CarbonRecord] = []
    cursor = None
    while True:
        page = cat.carbon.list(training_job_id=job_id, page_size=100, cursor=cursor)
        out.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            return out


def job_totals(records: list[s.CarbonRecord]) -> CarbonTotals:
    """The sum over a job's node records."""
    return CarbonTotals(
        energy_kwh=sum(r.energy_kwh for r in records),
        emissions_kg=sum(r.emissions_kg for r in records),
        duration_s=max((r.duration_s for r in records), default=0.0),
        nodes=len(records),
    )

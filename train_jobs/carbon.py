"""Energy and emissions of a training job: one codecarbon tracker per node it runs on.

codecarbon measures the whole machine (CPU, GPU and RAM power of the host), so a
tracker per worker would count a node several times. The lowest-ranked worker on each
node (one per node, whatever the number of GPUs) runs one :class:`NodeEnergy`;
its running totals ride on the worker's metric reports, and the Ray Train callback
(:mod:`train_jobs.callbacks`) keeps one carbon record per node of the job, rewritten
with each report (:func:`node_record`). A node lost mid-job keeps what it reported;
a node the job moves to starts its own tracker. The job's energy is the sum over its
nodes (:func:`job_totals`).

Each node's record also carries codecarbon's CPU/GPU/RAM breakdown (power in W, energy
in kWh, from the ``EmissionsData`` its tracker writes on each ``flush``), the grid
codecarbon priced it with, the carbon intensity (g CO2eq/kWh), and a timeline: one
point per report (cumulative emissions and energy over the node's tracker sessions,
and the power since the previous report), thinned evenly past
:data:`MAX_TIMELINE_POINTS` (:class:`Timeline`).

``OfflineEmissionsTracker(country_iso_code=...)`` needs no network: the carbon
intensity comes from codecarbon's bundled energy-mix table.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from codecarbon.output_methods.base_output import BaseOutput
from codecarbon.output_methods.emissions_data import EmissionsData

from catalog import schemas as s
from catalog.energy import Meter
from catalog.port import CatalogPort

#: codecarbon's default sampling period is 15 s; short test jobs need a finer one.
MEASURE_POWER_SECS = 5.0
TOOL = "codecarbon OfflineEmissionsTracker"
#: most points a node's timeline keeps (the record is rewritten with each report)
MAX_TIMELINE_POINTS = 500
#: joules in a kilowatt-hour (3600 s x 1000 W)
J_PER_KWH = 3.6e6
#: the power and energy parts of codecarbon's EmissionsData, under our names
BREAKDOWN_FIELDS = {"cpu_power_w": "cpu_power", "gpu_power_w": "gpu_power",
                    "ram_power_w": "ram_power", "cpu_energy_kwh": "cpu_energy",
                    "gpu_energy_kwh": "gpu_energy", "ram_energy_kwh": "ram_energy"}


@dataclass
class CarbonTotals:
    """A job's energy (kWh), emissions (kg CO2eq), longest node measurement (s), and
    the number of nodes measured."""

    energy_kwh: float
    emissions_kg: float
    duration_s: float
    nodes: int


class LatestEmissions(BaseOutput):
    """A codecarbon output handler keeping the last ``(total, delta)`` EmissionsData
    the tracker wrote (``flush`` and ``stop`` write; ``delta`` covers the time since the
    previous write, or since start for the first)."""

    def __init__(self) -> None:
        self.total: EmissionsData | None = None
        self.delta: EmissionsData | None = None

    def out(self, total: EmissionsData, delta: EmissionsData) -> None:
        self.total, self.delta = total, delta


def breakdown(data: EmissionsData | None) -> dict[str, float]:
    """The CPU/GPU/RAM parts of one EmissionsData: ``{"cpu_power_w", "gpu_power_w",
    "ram_power_w"}`` (W, codecarbon's mean over its measurements since start) and
    ``{"cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh"}`` (kWh since start, which
    sum to its ``energy_consumed``). All 0.0 when there is no data yet."""
    return {ours: float(getattr(data, theirs, 0.0) or 0.0) if data is not None else 0.0
            for ours, theirs in BREAKDOWN_FIELDS.items()}


def location(data: EmissionsData | None, default: str = "") -> str:
    """The grid codecarbon priced the energy with: its country ISO code, then
    ``/region`` when it used a region (``"USA"``, ``"USA/california"``)."""
    if data is None:
        return default
    iso = data.country_iso_code or default
    return f"{iso}/{data.region}" if data.region else iso


def carbon_intensity(emissions_kg: float, energy_kwh: float) -> float:
    """Emissions per energy, g CO2eq/kWh (emissions / energy x 1000); 0.0 without energy."""
    return emissions_kg / energy_kwh * 1000.0 if energy_kwh > 0 else 0.0


class NodeEnergy:
    """A codecarbon meter (:class:`catalog.energy.Meter`) measuring this machine from now
    on.

    Args:
        job_id: names the codecarbon project.
        country_iso_code: 3-letter ISO code for the grid's carbon intensity.
        node_id: the node measured (Ray's node id, or the host name).
        measure_power_secs: codecarbon's sampling period, s.
    """

    def __init__(self, job_id: str, country_iso_code: str, node_id: str,
                 measure_power_secs: float = MEASURE_POWER_SECS):
        self.node_id = node_id
        self.country_iso_code = country_iso_code
        #: one id per tracker: a worker group restarted on the same node starts another
        self.session = uuid.uuid4().hex
        self._latest = LatestEmissions()
        self.meter = Meter(f"garden-train-{job_id}", country_iso_code, measure_power_secs,
                           output_handlers=[self._latest])
        self.meter.start()

    def totals(self) -> dict[str, Any]:
        """Running totals since start, measured up to now (``flush``)::

            {"node_id", "session", "timestamp": ISO-8601 UTC, "energy_kwh",
             "emissions_kg", "duration_s", "power_w", "breakdown": {...}, "location"}

        ``power_w`` is the node's mean total (CPU + GPU + RAM) power since the previous
        call, W (energy of the interval / its length), or codecarbon's mean power since
        start when nothing was measured since that call (calls under 0.05 s apart);
        ``breakdown`` is :func:`breakdown`; ``location`` is :func:`location`.
        """
        self.meter.read()
        return self._totals()

    def stop(self) -> dict[str, Any]:
        """Stop measuring; the final totals (as :meth:`totals`)."""
        self.meter.stop()
        return self._totals()

    def _totals(self) -> dict[str, Any]:
        data, delta = self._latest.total, self._latest.delta
        parts = breakdown(data)
        interval_s = float(delta.duration) if delta is not None else 0.0
        interval_kwh = float(delta.energy_consumed) if delta is not None else 0.0
        if interval_s > 0 and interval_kwh > 0:
            power_w = interval_kwh * J_PER_KWH / interval_s
        else:  # no measurement since the previous call: codecarbon's mean power
            power_w = parts["cpu_power_w"] + parts["gpu_power_w"] + parts["ram_power_w"]
        return {"node_id": self.node_id, "session": self.session,
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "energy_kwh": float(data.energy_consumed) if data is not None else 0.0,
                "emissions_kg": float(data.emissions) if data is not None else 0.0,
                "duration_s": float(data.duration) if data is not None else 0.0,
                "power_w": max(power_w, 0.0), "breakdown": parts,
                "location": location(data, self.country_iso_code)}


def record_id(job_id: str, node_id: str) -> str:
    """The carbon record id of one node of one job (stable, so rewrites replace it)."""
    return "co2_" + hashlib.sha256(f"{job_id}/{node_id}".encode()).hexdigest()[:32]


class Timeline:
    """Points of a series, at most ``max_points``, thinned evenly by decimation.

    Points are kept at every ``stride``-th addition (stride 1 at first); when the kept
    ones would exceed ``max_points - 1`` every second one is dropped and the stride
    doubles, so the kept points stay evenly spaced over the additions and always start
    with the first. The latest point is always returned last.

    Args:
        max_points: the most points :meth:`points` returns (>= 2).

    Raises:
        ValueError: ``max_points`` < 2.
    """

    def __init__(self, max_points: int = MAX_TIMELINE_POINTS):
        if max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {max_points}")
        self.max_points = max_points
        self._kept: list[dict[str, Any]] = []
        self._stride = 1
        self._added = 0
        self._latest: dict[str, Any] | None = None

    def add(self, point: dict[str, Any]) -> None:
        """Append one point."""
        if self._added % self._stride == 0:
            self._kept.append(point)
            if len(self._kept) > self.max_points - 1:
                self._kept = self._kept[::2]
                self._stride *= 2
        self._added += 1
        self._latest = point

    def points(self) -> list[dict[str, Any]]:
        """The kept points, oldest first, ending with the latest added."""
        if self._latest is None or (self._kept and self._kept[-1] is self._latest):
            return list(self._kept)
        return [*self._kept, self._latest]

    def __len__(self) -> int:
        return len(self.points())


class NodeSessions:
    """The latest totals of every tracker session of a job, summed per node, and each
    node's timeline (one point per update, :class:`Timeline`).

    Args:
        max_points: the most points a node's timeline keeps.
    """

    def __init__(self, max_points: int = MAX_TIMELINE_POINTS) -> None:
        self.max_points = max_points
        self._sessions: dict[str, dict[str, Any]] = {}
        self._timelines: dict[str, Timeline] = {}

    def update(self, totals: dict[str, Any]) -> str:
        """Keep a session's newest totals (:meth:`NodeEnergy.totals`) and add a point to
        its node's timeline: ``{"timestamp", "emissions_kg", "energy_kwh"}`` cumulative
        over the node's sessions, and ``power_w`` of the reporting session. Returns the
        node id."""
        node_id = totals["node_id"]
        self._sessions[totals["session"]] = totals
        sums = self._sums(node_id)
        timeline = self._timelines.setdefault(node_id, Timeline(self.max_points))
        timeline.add({"timestamp": totals.get("timestamp")
                      or datetime.now(UTC).isoformat(timespec="milliseconds"),
                      "emissions_kg": sums["emissions_kg"], "energy_kwh": sums["energy_kwh"],
                      "power_w": float(totals.get("power_w") or 0.0)})
        return node_id

    def _sums(self, node_id: str) -> dict[str, float]:
        mine = [t for t in self._sessions.values() if t["node_id"] == node_id]
        return {"energy_kwh": sum(t["energy_kwh"] for t in mine),
                "emissions_kg": sum(t["emissions_kg"] for t in mine),
                "duration_s": sum(t["duration_s"] for t in mine), "sessions": len(mine)}

    def node(self, node_id: str) -> dict[str, Any]:
        """One node's figures::

            {"energy_kwh", "emissions_kg", "duration_s", "sessions",
             "breakdown", "timeline", "location"}

        Energy, emissions, duration and the ``*_energy_kwh`` parts of ``breakdown`` are
        summed over the node's sessions; the ``*_power_w`` parts and ``location`` are
        the latest session's; ``timeline`` is the node's kept points (oldest first).
        """
        sums: dict[str, Any] = self._sums(node_id)
        mine = [t for t in self._sessions.values() if t["node_id"] == node_id]
        latest = mine[-1] if mine else {}
        parts = dict(latest.get("breakdown") or breakdown(None))
        for key in ("cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh"):
            parts[key] = sum(float((t.get("breakdown") or {}).get(key, 0.0)) for t in mine)
        timeline = self._timelines.get(node_id)
        sums.update(breakdown=parts, timeline=timeline.points() if timeline else [],
                    location=latest.get("location"))
        return sums


def node_record(job: s.TrainingJob, node_id: str, sums: dict[str, Any],
                model_id: str | None = None) -> s.CarbonCreate:
    """The carbon record of one node of ``job`` (id :func:`record_id`), from
    :meth:`NodeSessions.node`.

    ``details``: ``node_id``, ``sessions``, ``tool``, ``breakdown`` (CPU/GPU/RAM power,
    W, and energy, kWh), ``timeline`` (``[{"timestamp", "emissions_kg", "energy_kwh",
    "power_w"}]``, cumulative, at most :data:`MAX_TIMELINE_POINTS`), ``location`` (the
    grid codecarbon used, :func:`location`; the job's country when unknown) and
    ``carbon_intensity_g_per_kwh`` (:func:`carbon_intensity`).
    """
    energy_kwh, emissions_kg = sums["energy_kwh"], sums["emissions_kg"]
    return s.CarbonCreate(
        id=record_id(job.id, node_id), source=s.CarbonSource.training,
        energy_kwh=energy_kwh, emissions_kg=emissions_kg,
        duration_s=sums["duration_s"], training_job_id=job.id, model_id=model_id,
        country_iso_code=job.country_iso_code, user_id=job.user_id,
        details={"node_id": node_id, "sessions": int(sums.get("sessions", 1)), "tool": TOOL,
                 "breakdown": sums.get("breakdown") or breakdown(None),
                 "timeline": list(sums.get("timeline") or []),
                 "location": sums.get("location") or job.country_iso_code or "",
                 "carbon_intensity_g_per_kwh": carbon_intensity(emissions_kg, energy_kwh)},
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

"""Per-node carbon details of training jobs (:mod:`train_jobs.carbon`): codecarbon's
real OfflineEmissionsTracker measuring this machine for about two seconds, node timelines
over reports and tracker sessions, and the node records written to a real catalog
(SQLite and PostgreSQL). No Ray."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta

import pytest

from catalog import schemas as s
from tests import factories
from train_jobs.carbon import (
    MAX_TIMELINE_POINTS,
    NodeEnergy,
    NodeSessions,
    Timeline,
    job_records,
    job_totals,
    node_record,
    record_id,
)

BREAKDOWN_KEYS = {"cpu_power_w", "gpu_power_w", "ram_power_w",
                  "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh"}
ENERGY_PARTS = ("cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh")


def totals(session: str, n: int, node_id: str = "node-a", kwh_per_report: float = 1e-3,
           g_per_kwh: float = 400.0, start: datetime | None = None) -> dict:
    """The totals a tracker session reports the ``n``-th time (1-based), as
    :meth:`NodeEnergy.totals` shapes them: energy grows by ``kwh_per_report`` a report,
    two thirds CPU and one third RAM, at 2 W CPU and 1 W RAM."""
    energy = kwh_per_report * n
    start = start or datetime(2026, 1, 1)
    return {"node_id": node_id, "session": session,
            "timestamp": (start + timedelta(seconds=n)).isoformat() + "+00:00",
            "energy_kwh": energy, "emissions_kg": energy * g_per_kwh / 1000.0,
            "duration_s": float(n), "power_w": 3.0,
            "breakdown": {"cpu_power_w": 2.0, "gpu_power_w": 0.0, "ram_power_w": 1.0,
                          "cpu_energy_kwh": energy * 2 / 3, "gpu_energy_kwh": 0.0,
                          "ram_energy_kwh": energy / 3},
            "location": "USA"}


def test_a_node_measured_by_codecarbon_reports_its_breakdown_and_timeline():
    energy = NodeEnergy("job_carbon_test", "USA", "node-a", measure_power_secs=0.5)
    sessions = NodeSessions()
    try:
        for _ in range(3):
            time.sleep(0.6)
            sessions.update(energy.totals())
    finally:
        final = energy.stop()

    for reported in (sessions.node("node-a"), final):
        parts = reported["breakdown"]
        assert set(parts) == BREAKDOWN_KEYS
        assert all(value >= 0 for value in parts.values())
        assert reported["energy_kwh"] > 0 and reported["emissions_kg"] > 0
        assert sum(parts[k] for k in ENERGY_PARTS) == pytest.approx(reported["energy_kwh"],
                                                                    rel=1e-6)
        assert parts["cpu_power_w"] + parts["gpu_power_w"] + parts["ram_power_w"] > 0
        assert reported["location"] == "USA"
    assert final["duration_s"] >= 1.8 and final["power_w"] > 0

    node = sessions.node("node-a")
    timeline = node["timeline"]
    assert len(timeline) == 3 and node["sessions"] == 1
    stamps = [datetime.fromisoformat(p["timestamp"]) for p in timeline]
    assert all(t.utcoffset() == timedelta(0) for t in stamps) and stamps == sorted(stamps)
    emissions = [p["emissions_kg"] for p in timeline]
    assert emissions == sorted(emissions) and emissions[-1] == node["emissions_kg"]
    assert [p["energy_kwh"] for p in timeline] == sorted(p["energy_kwh"] for p in timeline)
    assert all(p["power_w"] > 0 for p in timeline)


def test_the_timeline_grows_a_point_per_update_and_is_monotone():
    sessions = NodeSessions()
    for n in range(1, 11):
        assert sessions.update(totals("s1", n)) == "node-a"
        assert len(sessions.node("node-a")["timeline"]) == n
    timeline = sessions.node("node-a")["timeline"]
    emissions = [p["emissions_kg"] for p in timeline]
    assert emissions == sorted(emissions) and len(set(emissions)) == 10
    assert timeline[-1]["energy_kwh"] == pytest.approx(10e-3)
    assert {p["power_w"] for p in timeline} == {3.0}


def test_a_long_timeline_is_thinned_evenly_keeping_the_first_and_latest():
    sessions = NodeSessions()
    reports = 5 * MAX_TIMELINE_POINTS + 7
    for n in range(1, reports + 1):
        sessions.update(totals("s1", n))
        assert len(sessions.node("node-a")["timeline"]) <= MAX_TIMELINE_POINTS
    timeline = sessions.node("node-a")["timeline"]
    assert len(timeline) > MAX_TIMELINE_POINTS // 2
    assert timeline[0] == {"timestamp": totals("s1", 1)["timestamp"],
                           "emissions_kg": pytest.approx(1e-3 * 0.4),
                           "energy_kwh": pytest.approx(1e-3), "power_w": 3.0}
    assert timeline[-1]["timestamp"] == totals("s1", reports)["timestamp"]
    # evenly spaced: every kept point but the latest is one stride of reports apart
    steps = {round((b["energy_kwh"] - a["energy_kwh"]) / 1e-3)
             for a, b in itertools.pairwise(timeline[:-1])}
    assert len(steps) == 1


def test_timeline_keeps_at_most_its_limit():
    line = Timeline(max_points=4)
    for i in range(100):
        line.add({"i": i})
        kept = [p["i"] for p in line.points()]
        assert len(kept) <= 4 and kept[0] == 0 and kept[-1] == i
    with pytest.raises(ValueError):
        Timeline(max_points=1)


def test_sessions_on_one_node_continue_its_timeline_summed():
    sessions = NodeSessions()
    for n in (1, 2, 3):  # the first worker group, then it fails
        sessions.update(totals("first", n))
    sessions.update(totals("other", 1, node_id="node-b"))
    for n in (1, 2):  # the restarted group on the same node: a new tracker session
        sessions.update(totals("second", n))

    node = sessions.node("node-a")
    assert node["sessions"] == 2
    assert node["energy_kwh"] == pytest.approx(5e-3)
    assert node["emissions_kg"] == pytest.approx(5e-3 * 0.4)
    assert node["duration_s"] == pytest.approx(5.0)
    assert sum(node["breakdown"][k] for k in ENERGY_PARTS) == pytest.approx(5e-3)
    assert node["breakdown"]["cpu_power_w"] == 2.0
    assert [p["energy_kwh"] for p in node["timeline"]] == pytest.approx(
        [1e-3, 2e-3, 3e-3, 4e-3, 5e-3])
    assert len(sessions.node("node-b")["timeline"]) == 1
    assert sessions.node("node-b")["energy_kwh"] == pytest.approx(1e-3)


def test_node_records_carry_the_details_and_rewrites_count_once(store):
    job = factories.job(store, country_iso_code="FRA")
    sessions = NodeSessions()
    for n in range(1, 5):
        node_id = sessions.update(totals("s1", n, g_per_kwh=50.0))
        store.record_carbon(node_record(job, node_id, sessions.node(node_id)))

    [record] = job_records(store, job.id)
    assert record.id == record_id(job.id, "node-a")
    assert record.energy_kwh == pytest.approx(4e-3)
    details = record.details
    assert details["node_id"] == "node-a" and details["sessions"] == 1
    assert set(details["breakdown"]) == BREAKDOWN_KEYS
    assert sum(details["breakdown"][k] for k in ENERGY_PARTS) == pytest.approx(4e-3)
    assert details["location"] == "USA"
    assert details["carbon_intensity_g_per_kwh"] == pytest.approx(50.0)
    assert [p["emissions_kg"] for p in details["timeline"]] == pytest.approx(
        [n * 1e-3 * 0.05 for n in range(1, 5)])
    assert set(details["timeline"][0]) == {"timestamp", "emissions_kg", "energy_kwh",
                                           "power_w"}
    assert job_totals([record]).emissions_kg == pytest.approx(4e-3 * 0.05)
    assert store.training_jobs.get(job.id).energy_kwh == pytest.approx(4e-3)


def test_a_node_without_energy_has_zero_intensity():
    job = s.TrainingJob.model_construct(id="job_x", country_iso_code="SWE", user_id=None)
    record = node_record(job, "node-a", {"energy_kwh": 0.0, "emissions_kg": 0.0,
                                         "duration_s": 0.0})
    assert record.details["carbon_intensity_g_per_kwh"] == 0.0
    assert record.details["timeline"] == [] and record.details["location"] == "SWE"
    assert set(record.details["breakdown"]) == BREAKDOWN_KEYS

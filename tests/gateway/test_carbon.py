"""``/v1/carbon``: seed 002's summary (training vs inference, by model) and rows by
period/model/job, records, a job's footprint (breakdown, timeline), CSV export."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from catalog import schemas as s
from serve_apps.gateway.routes.carbon import job_carbon_details, merge_timelines
from tests import factories
from tests.gateway.fixtures import assert_error, auth

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def footprint(catalog_store):
    """A job of alice's with two training measurements, and one media record of bob's."""
    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"cbase-{tag}", path="/m", published=True)
    data = factories.dataset(catalog_store, f"cdata-{tag}", rows=1, path="/d", size_bytes=1,
                             user_id="alice")
    job = factories.job(catalog_store, base=base, data=data, name="c", user_id="alice")
    for kwh in (0.5, 0.25):
        catalog_store.record_carbon(s.CarbonCreate(
            source="training", energy_kwh=kwh, emissions_kg=kwh / 2, training_job_id=job.id,
            model_id=base.id, user_id="alice"))
    catalog_store.record_carbon(s.CarbonCreate(
        source="media", energy_kwh=1.0, emissions_kg=0.4, user_id="bob"))
    return job, base


def test_summary_by_job_model_and_month_for_the_owner(alice, footprint):
    job, base = footprint
    by_job = alice.get("/v1/carbon/summary", params={"group_by": "job"}).json()
    row = next(r for r in by_job["rows"] if r["key"] == job.id)
    assert (row["energy_kwh"], row["emissions_kg"], row["records"]) == (0.75, 0.375, 2)
    by_model = alice.get("/v1/carbon/summary", params={"group_by": "model"}).json()
    assert any(r["key"] == base.id for r in by_model["rows"])
    by_month = alice.get("/v1/carbon/summary").json()
    assert by_month["group_by"] == "month"
    assert by_month["total_energy_kwh"] == pytest.approx(
        sum(r["energy_kwh"] for r in by_month["rows"]))
    assert_error(alice.get("/v1/carbon/summary", params={"group_by": "year"}),
                 422, "invalid_argument")
    assert_error(alice.get("/v1/carbon/summary", params={"since": "yesterday"}),
                 422, "invalid_argument")


def test_users_do_not_see_each_others_footprint(bob, admin, footprint):
    job, _ = footprint
    bob_sources = bob.get("/v1/carbon/summary", params={"group_by": "source"}).json()
    assert "training" not in {r["key"] for r in bob_sources["rows"]}
    assert_error(bob.get(f"/v1/carbon/jobs/{job.id}"), 403, "permission_denied")
    all_sources = admin.get("/v1/carbon/summary", params={"group_by": "source"}).json()
    assert {"training", "media"} <= {r["key"] for r in all_sources["rows"]}


def test_job_footprint_and_records_pages(alice, footprint):
    job, _ = footprint
    body = alice.get(f"/v1/carbon/jobs/{job.id}").json()
    assert (body["total_energy_kwh"], body["total_emissions_kg"], len(body["records"])) == (
        0.75, 0.375, 2)
    assert body["carbon_intensity"] == pytest.approx(500.0)  # 0.375 kg / 0.75 kWh in g/kWh
    # records written without a breakdown or a timeline: zeros and an empty list
    assert set(body["breakdown"].values()) == {0.0} and body["timeline"] == []
    page = alice.get("/v1/carbon/records", params={"source": "training", "page_size": 1}).json()
    assert len(page["items"]) == 1 and page["total"] >= 2 and page["next_cursor"]


def test_csv_export(alice, footprint):
    job, _ = footprint
    r = alice.get("/v1/carbon/export.csv", params={"source": "training"})
    assert r.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(r.text))
    # the documented columns, in order (the route's description)
    assert tuple(reader.fieldnames or ()) == (
        "id", "created_at", "source", "energy_kwh", "emissions_kg", "duration_s",
        "training_job_id", "model_id", "country_iso_code", "user_id")
    rows = list(reader)
    mine = [row for row in rows if row["training_job_id"] == job.id]
    assert sorted(float(row["energy_kwh"]) for row in mine) == [0.25, 0.5]
    assert {row["user_id"] for row in rows} == {"alice"}


NODE_A = {"breakdown": {"cpu_power_w": 10.0, "gpu_power_w": 0.0, "ram_power_w": 3.0,
                        "cpu_energy_kwh": 0.02, "gpu_energy_kwh": 0.0, "ram_energy_kwh": 0.005},
          "location": "FRA",
          "timeline": [{"timestamp": "2026-01-01T00:00:00+00:00", "emissions_kg": 0.001,
                        "energy_kwh": 0.01, "power_w": 12.0},
                       {"timestamp": "2026-01-01T00:00:10+00:00", "emissions_kg": 0.002,
                        "energy_kwh": 0.02, "power_w": 13.0}]}
NODE_B = {"breakdown": {"cpu_power_w": 20.0, "gpu_power_w": 100.0, "ram_power_w": 5.0,
                        "cpu_energy_kwh": 0.04, "gpu_energy_kwh": 0.2, "ram_energy_kwh": 0.01},
          "location": "FRA",
          "timeline": [{"timestamp": "2026-01-01T00:00:05+00:00", "emissions_kg": 0.01,
                        "energy_kwh": 0.1, "power_w": 120.0},
                       {"timestamp": "2026-01-01T00:00:20+00:00", "emissions_kg": 0.03,
                        "energy_kwh": 0.25, "power_w": 125.0}]}


def _record(details: dict, kwh: float, kg: float, duration_s: float) -> s.CarbonRecord:
    now = datetime.now(UTC)
    return s.CarbonRecord(
        id=f"cbn_{uuid.uuid4().hex}", source="training", energy_kwh=kwh, emissions_kg=kg,
        duration_s=duration_s, training_job_id="job_x", model_id=None,
        country_iso_code="FRA", details=details, user_id="alice", created_at=now)


def test_node_timelines_merge_by_time_with_cumulative_emissions():
    merged = merge_timelines([_record(NODE_A, 0.025, 0.002, 10),
                              _record(NODE_B, 0.25, 0.03, 20)])
    assert [(p.timestamp.second, p.emissions_kg, p.power_w) for p in merged] == [
        (0, pytest.approx(0.001), 12.0),    # only node A has reported
        (5, pytest.approx(0.011), 132.0),   # A's last point + B's first
        (10, pytest.approx(0.012), 133.0),
        (20, pytest.approx(0.032), 125.0),  # A has stopped: its emissions stay, power not
    ]


def test_job_details_sum_the_nodes_breakdowns():
    details = job_carbon_details("job_x", [_record(NODE_A, 0.025, 0.002, 10),
                                           _record(NODE_B, 0.25, 0.03, 20),
                                           _record({"timeline": "broken"}, 0.0, 0.0, 1)])
    assert details.breakdown.model_dump() == pytest.approx({
        "cpu_power_w": 30.0, "gpu_power_w": 100.0, "ram_power_w": 8.0,
        "cpu_energy_kwh": 0.06, "gpu_energy_kwh": 0.2, "ram_energy_kwh": 0.015})
    assert details.total_energy_kwh == pytest.approx(0.275)
    assert details.carbon_intensity == pytest.approx(0.032 / 0.275 * 1000)
    assert (details.duration_seconds, details.location, len(details.timeline)) == (
        20, "FRA", 4)
    empty = job_carbon_details("job_y", [])
    assert (empty.carbon_intensity, empty.location, empty.timeline) == (0.0, None, [])


@pytest.fixture(scope="module")
def measured(catalog_store, admin, gateway_url):
    """A fresh user with a two-node job measured with breakdowns and timelines, a media
    record, and one inference request on an adapter; an HTTP client with their key."""
    tag = uuid.uuid4().hex[:6]
    user = f"fay-{tag}"
    created = admin.post("/v1/keys", json={"user_id": user, "name": "carbon"}).json()
    base = factories.base_model(catalog_store, f"fbase-{tag}", path="/m", published=True)
    data = factories.dataset(catalog_store, f"fdata-{tag}", rows=1, path="/d", size_bytes=1,
                             user_id=user)
    job = factories.job(catalog_store, base=base, data=data, name="f", user_id=user)
    for details, kwh, kg in ((NODE_A, 0.25, 0.1), (NODE_B, 0.5, 0.2)):
        catalog_store.record_carbon(s.CarbonCreate(
            source="training", energy_kwh=kwh, emissions_kg=kg, duration_s=20,
            training_job_id=job.id, model_id=base.id, country_iso_code="FRA",
            details=details, user_id=user))
    catalog_store.record_carbon(s.CarbonCreate(
        source="media", energy_kwh=0.1, emissions_kg=0.05, user_id=user))
    catalog_store.record_usage([s.UsageCreate(
        model=base.name, model_id=f"mdl_adapter{tag}", adapter="tuned", user_id=user,
        prompt_tokens=3, completion_tokens=2, energy_kwh=0.3, emissions_kg=0.15,
        created_at=datetime.now(UTC) - timedelta(minutes=1))])
    with httpx.Client(base_url=gateway_url, headers=auth(created["secret"]), timeout=60) as c:
        yield c, job, base, tag


def test_summary_splits_training_and_inference_and_shares_by_model(measured):
    http, _job, base, tag = measured
    summary = http.get("/v1/carbon/summary", params={"group_by": "source"}).json()
    assert summary["total_emissions_kg"] == pytest.approx(0.5)
    assert summary["training_emissions_kg"] == pytest.approx(0.3)
    assert summary["inference_emissions_kg"] == pytest.approx(0.2)
    assert summary["total_energy_kwh"] == pytest.approx(1.15)
    assert (summary["num_training_jobs"], summary["num_inference_requests"]) == (1, 1)
    assert summary["period"] == {"since": None, "until": None}
    shares = {(m["model_id"], m["model_name"]): m["percentage"] for m in summary["by_model"]}
    assert shares == pytest.approx({(base.id, base.name): 60.0,
                                    (f"mdl_adapter{tag}", None): 30.0, (None, None): 10.0})
    assert summary["by_model"][0]["model_id"] == base.id  # largest first
    assert {r["key"]: r["records"] for r in summary["rows"]} == {
        "training": 2, "media": 1, "inference": 1}
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = http.get("/v1/carbon/summary", params={"since": since}).json()
    assert later["total_emissions_kg"] == 0 and later["period"]["since"] is not None


def test_job_details_over_http(measured):
    http, job, _base, _tag = measured
    body = http.get(f"/v1/carbon/jobs/{job.id}").json()
    assert body["job_id"] == job.id
    assert body["total_emissions_kg"] == pytest.approx(0.3)
    assert body["carbon_intensity"] == pytest.approx(400.0)
    assert body["breakdown"]["gpu_power_w"] == 100.0 and body["location"] == "FRA"
    assert [p["power_w"] for p in body["timeline"]] == [12.0, 132.0, 133.0, 125.0]
    assert len(body["records"]) == 2

"""``/v1/carbon``: summary by period/model/job, records, per-job footprint, CSV export."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from catalog import schemas as s
from tests import factories
from tests.gateway.fixtures import assert_error

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
    assert (body["energy_kwh"], len(body["records"])) == (0.75, 2)
    page = alice.get("/v1/carbon/records", params={"source": "training", "page_size": 1}).json()
    assert len(page["items"]) == 1 and page["total"] >= 2 and page["next_cursor"]


def test_csv_export(alice, footprint):
    job, _ = footprint
    r = alice.get("/v1/carbon/export.csv", params={"source": "training"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    mine = [row for row in rows if row["training_job_id"] == job.id]
    assert sorted(float(row["energy_kwh"]) for row in mine) == [0.25, 0.5]
    assert {row["user_id"] for row in rows} == {"alice"}

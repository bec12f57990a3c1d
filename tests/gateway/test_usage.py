"""``/v1/usage``: usage grouped by user, key, model, adapter, day and month, the records,
the CSV export; users see their own usage, admins everyone's."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from catalog import schemas as s
from tests.gateway.fixtures import assert_error, auth

pytestmark = pytest.mark.ray

#: The export's columns as the README and the route's description document them, in
#: order: written here, not read from the route's own constant.
DOCUMENTED_COLUMNS = ("id", "created_at", "kind", "user_id", "api_key_id", "model",
                      "model_id", "adapter", "provider", "prompt_tokens",
                      "completion_tokens", "total_tokens", "latency_ms", "ttft_ms",
                      "cost_usd", "energy_kwh", "emissions_kg")


@dataclass
class Tenant:
    """A user with one API key, and an HTTP client authenticated with it."""

    user_id: str
    key_id: str
    http: httpx.Client


@dataclass
class Footprint:
    tag: str
    carla: Tenant
    dan: Tenant
    adapter_id: str
    old: datetime


def _tenant(gateway_url: str, admin: httpx.Client, user_id: str) -> Tenant:
    created = admin.post("/v1/keys", json={"user_id": user_id, "name": "usage"})
    assert created.status_code == 201, created.text
    body = created.json()
    http = httpx.Client(base_url=gateway_url, headers=auth(body["secret"]), timeout=60)
    return Tenant(user_id, body["key"]["id"], http)


@pytest.fixture(scope="module")
def usage(gateway_url, admin, catalog_store):
    """Users carla-* and dan-* (fresh, so other modules' usage does not mix in): carla
    made two base-model requests and one adapter request today and one base request three
    days ago; dan one base request today."""
    tag = uuid.uuid4().hex[:6]
    carla = _tenant(gateway_url, admin, f"carla-{tag}")
    dan = _tenant(gateway_url, admin, f"dan-{tag}")
    now = datetime.now(UTC)
    old = now - timedelta(days=3)
    base, adapter_id = f"base-{tag}", f"mdl_adapter{tag}"

    def rec(who: Tenant, prompt: int, completion: int, **fields) -> s.UsageCreate:
        fields = {"model": base, "model_id": f"mdl_base{tag}", "created_at": now,
                  "energy_kwh": 0.001, "emissions_kg": 0.0005, **fields}
        return s.UsageCreate(user_id=who.user_id, api_key_id=who.key_id,
                             prompt_tokens=prompt, completion_tokens=completion, **fields)

    catalog_store.record_usage([
        rec(carla, 10, 5, cost_usd=0.25),
        rec(carla, 20, 10),
        rec(carla, 7, 3, adapter="tuned", model_id=adapter_id),
        rec(carla, 1, 1, created_at=old),
        rec(dan, 4, 4),
    ])
    yield Footprint(tag, carla, dan, adapter_id, old)
    carla.http.close()
    dan.http.close()


def test_a_user_sees_their_own_usage_grouped_every_way(usage):
    carla = usage.carla.http
    by_user = carla.get("/v1/usage", params={"group_by": "user"}).json()
    assert [r["key"] for r in by_user["rows"]] == [usage.carla.user_id]
    total = by_user["total"]
    assert (total["requests"], total["prompt_tokens"], total["completion_tokens"],
            total["total_tokens"]) == (4, 38, 19, 57)
    assert total["cost_usd"] == pytest.approx(0.25)
    assert total["energy_kwh"] == pytest.approx(0.004)
    assert total["emissions_kg"] == pytest.approx(0.002)

    by_key = carla.get("/v1/usage", params={"group_by": "key"}).json()
    assert [(r["key"], r["requests"]) for r in by_key["rows"]] == [(usage.carla.key_id, 4)]
    by_model = carla.get("/v1/usage").json()  # model is the default
    assert by_model["group_by"] == "model"
    assert [(r["key"], r["requests"]) for r in by_model["rows"]] == [(f"base-{usage.tag}", 4)]
    by_adapter = carla.get("/v1/usage", params={"group_by": "adapter"}).json()
    assert {r["key"]: r["requests"] for r in by_adapter["rows"]} == {
        usage.adapter_id: 1, None: 3}
    by_day = carla.get("/v1/usage", params={"group_by": "day"}).json()
    days = {r["key"]: r["total_tokens"] for r in by_day["rows"]}
    assert days == {datetime.now(UTC).strftime("%Y-%m-%d"): 55,
                    usage.old.strftime("%Y-%m-%d"): 2}
    by_month = carla.get("/v1/usage", params={"group_by": "month"}).json()
    assert sum(r["requests"] for r in by_month["rows"]) == 4
    assert all(len(r["key"]) == 7 for r in by_month["rows"])  # YYYY-MM


def test_an_admin_sees_everyone_and_may_pick_a_user(usage, admin):
    by_user = admin.get("/v1/usage", params={"group_by": "user"}).json()
    rows = {r["key"]: r["requests"] for r in by_user["rows"]}
    assert rows[usage.carla.user_id] == 4 and rows[usage.dan.user_id] == 1
    dan_only = admin.get("/v1/usage", params={"group_by": "user",
                                              "user_id": usage.dan.user_id}).json()
    assert [(r["key"], r["total_tokens"]) for r in dan_only["rows"]] == [
        (usage.dan.user_id, 8)]
    by_key = admin.get("/v1/usage", params={"api_key_id": usage.carla.key_id}).json()
    assert by_key["total"]["requests"] == 4


def test_a_user_may_not_read_another_users_usage(usage, anon):
    dan = usage.dan.http
    assert_error(dan.get("/v1/usage", params={"user_id": usage.carla.user_id}),
                 403, "permission_denied")
    assert_error(dan.get("/v1/usage/records", params={"user_id": usage.carla.user_id}),
                 403, "permission_denied")
    own = dan.get("/v1/usage", params={"user_id": usage.dan.user_id}).json()
    assert own["total"]["requests"] == 1
    # filtering by another user's key finds nothing of theirs
    assert dan.get("/v1/usage", params={"api_key_id": usage.carla.key_id}
                   ).json()["total"]["requests"] == 0
    assert_error(anon.get("/v1/usage"), 401, "unauthenticated")


def test_a_period_bounds_the_summary(usage):
    carla = usage.carla.http
    since = (usage.old + timedelta(days=1)).isoformat()
    recent = carla.get("/v1/usage", params={"since": since}).json()
    assert recent["total"]["requests"] == 3
    assert recent["since"].startswith(since[:19])
    until = (usage.old + timedelta(minutes=1)).isoformat()
    old = carla.get("/v1/usage", params={"until": until}).json()
    assert old["total"]["total_tokens"] == 2
    # a time without an offset is UTC
    naive = (usage.old + timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert carla.get("/v1/usage", params={"since": naive}).json()["total"]["requests"] == 3
    err = assert_error(carla.get("/v1/usage", params={"since": since, "until": since}),
                       422, "invalid_argument")
    assert err["field"] == "until"
    assert_error(carla.get("/v1/usage", params={"group_by": "year"}), 422, "invalid_argument")
    assert_error(carla.get("/v1/usage", params={"since": "yesterday"}),
                 422, "invalid_argument")


def test_records_filter_and_page(usage, admin):
    carla = usage.carla.http
    page = carla.get("/v1/usage/records", params={"page_size": 2}).json()
    assert page["total"] == 4 and len(page["items"]) == 2 and page["next_cursor"]
    rest = carla.get("/v1/usage/records", params={"page_size": 2,
                                                  "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    adapter = carla.get("/v1/usage/records", params={"model_id": usage.adapter_id}).json()
    [item] = adapter["items"]
    assert (item["adapter"], item["total_tokens"], item["api_key_id"]) == (
        "tuned", 10, usage.carla.key_id)
    assert carla.get("/v1/usage/records", params={"kind": "media"}).json()["total"] == 0
    # dan's records are not carla's, whatever the filter
    assert carla.get("/v1/usage/records", params={"api_key_id": usage.dan.key_id}
                     ).json()["total"] == 0
    everyone = admin.get("/v1/usage/records", params={"model": f"base-{usage.tag}"}).json()
    assert everyone["total"] == 5
    assert_error(carla.get("/v1/usage/records", params={"cursor": "nonsense"}),
                 422, "invalid_argument")


def test_csv_export_has_the_documented_columns(usage, admin):
    r = usage.carla.http.get("/v1/usage/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "usage.csv" in r.headers["content-disposition"]
    reader = csv.DictReader(io.StringIO(r.text))
    assert tuple(reader.fieldnames or ()) == DOCUMENTED_COLUMNS
    rows = list(reader)
    assert len(rows) == 4 and {row["user_id"] for row in rows} == {usage.carla.user_id}
    # each cell is the JSON record's value (an empty cell for null), newest first
    records = usage.carla.http.get("/v1/usage/records").json()["items"]
    assert [row["id"] for row in rows] == [rec["id"] for rec in records]
    for row, rec in zip(rows, records, strict=True):
        assert row == {c: "" if rec[c] is None else str(rec[c]) for c in DOCUMENTED_COLUMNS}
    assert sorted(int(row["total_tokens"]) for row in rows) == [2, 10, 15, 30]
    costed = [row for row in rows if row["cost_usd"]]
    assert [float(row["cost_usd"]) for row in costed] == [0.25]
    dan = admin.get("/v1/usage/export.csv", params={"user_id": usage.dan.user_id})
    assert [row["api_key_id"] for row in csv.DictReader(io.StringIO(dan.text))] == [
        usage.dan.key_id]

"""``client.usage``, the keys client's limits, and ``garden usage`` / ``garden keys limits``
/ ``garden carbon`` against the live gateway."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from catalog import schemas as s
from garden import Client
from garden.cli import app
from garden.errors import PermissionDeniedError, ValidationFailedError

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def gina(gateway_url, keys, catalog_store):
    """A fresh user gina-* with a key limited to 30 requests a minute, who made three
    requests (two on a base model, one on an adapter) an hour ago."""
    tag = uuid.uuid4().hex[:6]
    with Client(gateway_url, keys.admin) as admin:
        key, secret = admin.keys.create(f"gina-{tag}", "usage", rpm_limit=30)
    when = datetime.now(UTC) - timedelta(hours=1)
    catalog_store.record_usage([
        s.UsageCreate(model=f"m-{tag}", user_id=key.user_id, api_key_id=key.id,
                      prompt_tokens=p, completion_tokens=c, created_at=when, **extra)
        for p, c, extra in ((5, 5, {}), (10, 2, {"cost_usd": 0.5}),
                            (3, 1, {"adapter": "a", "model_id": f"mdl_a{tag}"}))])
    return key, secret, tag


@pytest.fixture
def client(gateway_url, gina):
    with Client(gateway_url, gina[1]) as c:
        yield c


def test_summary_records_and_csv_are_typed(client, gina, tmp_path):
    key, _secret, tag = gina
    summary = client.usage.summary(group_by="adapter")
    assert isinstance(summary, s.UsageSummary) and summary.group_by == "adapter"
    assert {r.key: r.total_tokens for r in summary.rows} == {f"mdl_a{tag}": 4, None: 22}
    assert (summary.total.requests, summary.total.cost_usd) == (3, 0.5)
    later = client.usage.summary(since=datetime.now(UTC) - timedelta(minutes=5))
    assert later.total.requests == 0
    page = client.usage.records(page_size=2)
    assert isinstance(page.items[0], s.UsageRecord) and page.total == 3 and page.next_cursor
    assert [r.adapter for r in client.usage.records(model_id=f"mdl_a{tag}").items] == ["a"]
    assert len(list(client.usage.iterate(api_key_id=key.id))) == 3

    path = tmp_path / "usage.csv"
    size = client.usage.export_csv(path)
    rows = list(csv.DictReader(path.open()))
    assert size == path.stat().st_size and len(rows) == 3
    assert {r["api_key_id"] for r in rows} == {key.id}
    text, binary = io.StringIO(), io.BytesIO()
    client.usage.export_csv(text, model=f"m-{tag}")
    client.usage.export_csv(binary)
    assert text.getvalue().encode() == binary.getvalue() == path.read_bytes()

    with pytest.raises(PermissionDeniedError):
        client.usage.summary(user_id="someone-else")
    with pytest.raises(ValidationFailedError):
        client.usage.summary(group_by="year")  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedError):
        client.usage.export_csv(tmp_path / "denied.csv", user_id="someone-else")
    assert not (tmp_path / "denied.csv").exists()


def test_key_limits_through_the_client(gateway_url, keys, gina):
    key, _secret, _tag = gina
    with Client(gateway_url, keys.admin) as admin:
        assert admin.keys.get(key.id).rpm_limit == 30
        changed = admin.keys.set_limits(key.id, tpm_limit=1000, token_budget=50_000)
        assert (changed.rpm_limit, changed.tpm_limit, changed.token_budget) == (
            30, 1000, 50_000)
        cleared = admin.keys.set_limits(key.id, rpm_limit=None)
        assert (cleared.rpm_limit, cleared.tpm_limit) == (None, 1000)
        assert admin.keys.set_limits(key.id).tpm_limit == 1000  # nothing given: unchanged
        admin.keys.set_limits(key.id, rpm_limit=30, tpm_limit=None, token_budget=None)


@pytest.fixture
def run(gateway_url, gina):
    runner = CliRunner()

    def invoke(*args: str, key: str | None = None):
        # a wide terminal: the session's keys table has 9 columns and as many rows as
        # the other tests made keys, and a name folded over lines is not found in it
        return runner.invoke(app, ["--api-url", gateway_url, "--api-key", key or gina[1],
                                   *args], env={"COLUMNS": "250"})

    return invoke


def test_cli_usage_table_and_csv(run, gina, tmp_path):
    _key, _secret, tag = gina
    table = run("usage", "--by", "model")
    assert table.exit_code == 0, table.output
    assert "usage by model" in table.output and f"m-{tag}" in table.output
    assert "total" in table.output and "0.5000" in table.output  # the known cost
    by_day = run("usage", "--by", "day", "--since",
                 (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d"))
    assert by_day.exit_code == 0 and "usage by day" in by_day.output
    path = tmp_path / "out.csv"
    wrote = run("usage", "--csv", str(path))
    assert wrote.exit_code == 0 and f"wrote {path}" in wrote.output
    assert path.read_text().startswith("id,created_at,kind,user_id,api_key_id,model")
    stdout = run("usage", "--csv", "-")
    assert stdout.exit_code == 0 and stdout.output == path.read_text()
    assert "403 permission_denied" in run("usage", "--user", "someone-else").output
    assert "422 invalid_argument" in run("usage", "--by", "year").output


def test_cli_keys_create_with_limits_and_change_them(run, keys, gateway_url):
    created = run("keys", "create", "hank", "--rpm", "10", "--budget", "5000", key=keys.admin)
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    assert (body["rpm_limit"], body["tpm_limit"], body["token_budget"]) == (10, None, 5000)
    changed = run("keys", "limits", body["id"], "--tpm", "700", "--rpm", "0", key=keys.admin)
    assert changed.exit_code == 0, changed.output
    with Client(gateway_url, keys.admin) as admin:
        key = admin.keys.get(body["id"])
    assert (key.rpm_limit, key.tpm_limit, key.token_budget) == (None, 700, 5000)
    denied = run("keys", "limits", body["id"], "--rpm", "1")
    assert denied.exit_code == 1 and "403 permission_denied" in denied.output
    assert run("keys", "create", "hank", "--rpm", "0", key=keys.admin).exit_code != 0
    listed = run("keys", "list", key=keys.admin)
    assert listed.exit_code == 0 and "hank" in listed.output


def test_cli_carbon_shows_the_seed_summary(run):
    result = run("carbon", "--group-by", "source")
    assert result.exit_code == 0, result.output
    for text in ("total", "training", "inference", "carbon by model", "carbon by source"):
        assert text in result.output

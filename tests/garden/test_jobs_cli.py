"""``garden jobs list | show | logs | watch | cancel``, ``garden models publish |
lineage`` (typer CliRunner) and ``client.models.lineage`` against the live gateway; the
job is a catalog row the test drives through the catalog (nothing trains)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from catalog import schemas as s
from garden import Client
from garden.cli import app
from tests import factories

pytestmark = pytest.mark.ray


@pytest.fixture
def run(gateway_url, keys):
    runner = CliRunner()

    def invoke(*args: str, key: str | None = None):
        return runner.invoke(app, ["--api-url", gateway_url, "--api-key", key or keys.alice,
                                   *args])

    return invoke


@pytest.fixture
def job(catalog_store):
    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"cbase-{tag}", published=True)
    data = factories.dataset(catalog_store, f"cdata-{tag}", user_id="alice")
    return factories.job(catalog_store, base=base, data=data, name=f"cli-{tag}",
                         user_id="alice")


def test_jobs_watch_follows_the_stream_to_the_end(run, job, catalog_store):
    def drive() -> None:
        time.sleep(1.0)
        catalog_store.transition_job(job.id, "running", total_steps=3)
        for step, loss in ((1, 2.5), (2, 2.0), (3, 1.5)):
            catalog_store.append_metrics(job.id, [s.MetricPoint(step=step, train_loss=loss)])
            catalog_store.training_jobs.update(job.id, current_step=step, progress=step / 3)
            time.sleep(0.3)
        catalog_store.add_event(job.id, s.JobEvent(level="warning", message="node is hot"))
        catalog_store.transition_job(job.id, "completed")

    driver = threading.Thread(target=drive)
    driver.start()
    watched = run("jobs", "watch", job.id, "--timeout-s", "60")
    driver.join()
    assert watched.exit_code == 0, watched.output
    out = watched.output
    assert out.index("status pending -> running") < out.index("node is hot") < out.index(
        "status running -> completed")
    assert "loss 1.5000 (min 1.5000)" in out and f"job {job.id} completed" in out

    listed = run("jobs", "list", "--status", "completed")
    assert listed.exit_code == 0 and job.name in listed.output and "100%" in listed.output
    shown = run("jobs", "show", job.id)
    assert shown.exit_code == 0, shown.output
    assert "completed" in shown.output and "train loss" in shown.output
    assert "1.5000 (step 3)" in shown.output and "node is hot" in shown.output
    events = run("jobs", "logs", job.id, "--events")
    assert events.exit_code == 0 and "status -> completed" in events.output
    # a finished job cannot be cancelled: the API's 409, exit 1
    refused = run("jobs", "cancel", job.id)
    assert refused.exit_code == 1 and "409" in refused.output


def test_jobs_watch_exits_1_for_a_failed_job_and_others_are_refused(run, job, catalog_store,
                                                                     keys):
    catalog_store.transition_job(job.id, "failed", error_message="out of memory")
    watched = run("jobs", "watch", job.id)
    assert watched.exit_code == 1
    assert "status pending -> failed: out of memory" in watched.output
    denied = run("jobs", "watch", job.id, key=keys.bob)
    assert denied.exit_code == 1 and "403 permission_denied" in denied.output


def test_jobs_token_prints_the_secret_alone_for_a_shell(run, catalog_store):
    """``$(garden jobs token)`` is the secret: stdout holds it alone, the hint is stderr's."""
    out = run("jobs", "token", "--ttl", "10m")
    assert out.exit_code == 0, out.output
    secret = out.stdout.strip()
    assert secret.startswith("gjt_") and out.stdout == secret + "\n"
    assert "GARDEN_JOB_TOKEN" in out.stderr and secret not in out.stderr
    token = catalog_store.authenticate(secret)
    assert (token.user_id, token.scope, token.job_id) == ("alice", "job", None)
    lifetime = (token.expires_at - token.created_at).total_seconds()
    assert 599 <= lifetime <= 601

    record = json.loads(run("jobs", "token", "--json").stdout)
    assert record["secret"].startswith("gjt_") and record["scope"] == "job"
    refused = run("jobs", "token", "--ttl", "4 hours")
    assert refused.exit_code == 2 and "--ttl" in refused.output


def test_models_publish_and_unpublish(run, catalog_store, keys):
    model = factories.base_model(catalog_store, f"mine-{uuid.uuid4().hex[:6]}",
                                 user_id="alice", published=False)
    published = run("models", "publish", model.id)
    assert published.exit_code == 0 and "published" in published.output
    assert catalog_store.models.get(model.id).published
    private = run("models", "publish", model.id, "--unpublish")
    assert private.exit_code == 0 and "private" in private.output
    assert not catalog_store.models.get(model.id).published
    assert run("models", "publish", model.id, key=keys.bob).exit_code == 1


def test_models_lineage_shows_the_adapters_job_and_totals(run, job, catalog_store,
                                                           gateway_url, keys):
    catalog_store.transition_job(job.id, "running")
    adapter = catalog_store.register_model(s.ModelCreate(
        name=f"{job.name}-lora", kind="adapter", path=f"/models/{job.name}-lora",
        base_model_id=job.base_model_id, dataset_id=job.dataset_id,
        training_job_id=job.id, metrics={"eval_loss": 1.5}, user_id="alice"))
    catalog_store.transition_job(job.id, "completed", output_model_id=adapter.id,
                                 eval_loss_before=2.25, eval_loss_after=1.5,
                                 energy_kwh=0.125, emissions_kg=0.05)
    catalog_store.record_usage([s.UsageCreate(
        model="base", adapter=adapter.name, model_id=adapter.id, user_id="alice",
        prompt_tokens=prompt, completion_tokens=4, cost_usd=0.5,
        created_at=datetime.now(UTC)) for prompt in (6, 10)])

    with Client(gateway_url, keys.alice) as client:
        lineage = client.models.lineage(adapter.name)
    assert isinstance(lineage, s.ModelLineage)
    assert lineage.training_job is not None and lineage.training_job.id == job.id
    assert lineage.base_model is not None and lineage.base_model.id == job.base_model_id
    assert lineage.training_job.status == s.JobStatus.completed
    assert (lineage.serving.requests, lineage.serving.prompt_tokens,
            lineage.serving.completion_tokens, lineage.serving.scope) == (2, 16, 8, "all")
    assert lineage.serving.cost_usd == pytest.approx(1.0)
    assert {(e.source, e.target, e.label) for e in lineage.edges} >= {
        (job.dataset_id, job.id, "trained on"), (job.id, adapter.id, "produced"),
        (adapter.id, f"requests:{adapter.id}", "served")}

    shown = run("models", "lineage", adapter.id)
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert f"training job: {job.name} (completed) {job.id}" in out
    data = catalog_store.datasets.get(job.dataset_id)
    assert f"trained on: {data.name} v1 (3 rows)" in out and data.id in out
    assert f"base model: {lineage.base_model.name} v1 (base)" in out
    assert "served: 2 requests, 24 tokens (all callers)" in out
    table = {line.split("  ")[0].strip(): line.split()[-1] for line in out.splitlines()
             if "  " in line.strip()}
    assert (table["cost USD"], table["training kg CO2eq"], table["eval loss before"]) == (
        "1.0000", "0.05", "2.2500")
    as_json = run("models", "lineage", adapter.id, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert s.ModelLineage.model_validate(json.loads(as_json.output)) == lineage
    denied = run("models", "lineage", adapter.id, key=keys.bob)
    assert denied.exit_code == 1 and "403 permission_denied" in denied.output

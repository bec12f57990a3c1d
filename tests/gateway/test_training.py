"""``/v1/training/jobs``: create, list, get, events, metrics, checkpoints, logs, cancel.

Creating and cancelling call ``train_jobs.submit`` against the session cluster's real
job API (its dashboard).
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from ray.job_submission import JobSubmissionClient

from catalog import schemas as s
from tests import factories
from tests.conftest import wait_for
from tests.gateway.fixtures import assert_error, auth

pytestmark = pytest.mark.ray


@pytest.fixture
def refs(catalog_store):
    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"tbase-{tag}", path="/models/x", published=True)
    data = factories.dataset(catalog_store, f"tdata-{tag}", rows=3, path="/data/x.jsonl",
                             size_bytes=9, user_id="alice")
    return base, data


@pytest.fixture
def job(catalog_store, refs):
    """A job of alice's with metrics, a checkpoint and events, as a running job leaves them."""
    base, data = refs
    job = factories.job(catalog_store, base=base, data=data, name="seeded", user_id="alice")
    catalog_store.transition_job(job.id, "queued")
    catalog_store.transition_job(job.id, "running")
    catalog_store.append_metrics(job.id, [s.MetricPoint(step=1, train_loss=2.5),
                                          s.MetricPoint(step=2, train_loss=2.0)])
    catalog_store.add_checkpoint(job.id, s.Checkpoint(step=2, path="/ckpt/2"))
    return job


def test_get_list_and_pagination(alice, bob, admin, job):
    assert alice.get(f"/v1/training/jobs/{job.id}").json()["status"] == "running"
    assert_error(bob.get(f"/v1/training/jobs/{job.id}"), 403, "permission_denied")
    assert_error(alice.get("/v1/training/jobs/job_missing"), 404, "not_found")
    page = alice.get("/v1/training/jobs", params={"status": "running", "page_size": 1}).json()
    assert page["total"] >= 1 and len(page["items"]) == 1
    assert all(j["user_id"] == "alice" for j in page["items"])
    assert bob.get("/v1/training/jobs", params={"dataset_id": job.dataset_id}).json()[
        "total"] == 0
    assert admin.get("/v1/training/jobs", params={"dataset_id": job.dataset_id}).json()[
        "total"] == 1
    assert_error(alice.get("/v1/training/jobs", params={"status": "paused"}),
                 422, "invalid_argument")


def test_events_follow_with_after(alice, job):
    first = alice.get(f"/v1/training/jobs/{job.id}/events").json()
    messages = [e["message"] for e in first["items"]]
    assert messages == ["job created", "status -> queued", "status -> running"]
    more = alice.get(f"/v1/training/jobs/{job.id}/events",
                     params={"after": first["next_after"]}).json()
    assert more["items"] == [] and more["next_after"] == first["next_after"]


def test_metrics_checkpoints_and_logs(alice, bob, job):
    metrics = alice.get(f"/v1/training/jobs/{job.id}/metrics").json()
    assert [m["train_loss"] for m in metrics] == [2.5, 2.0]
    assert alice.get(f"/v1/training/jobs/{job.id}/checkpoints").json()[0]["path"] == "/ckpt/2"
    logs = alice.get(f"/v1/training/jobs/{job.id}/logs").json()
    assert logs == {"job_id": job.id, "ray_job_id": None, "logs": ""}
    for sub in ("events", "metrics", "checkpoints", "logs"):
        assert_error(bob.get(f"/v1/training/jobs/{job.id}/{sub}"), 403, "permission_denied")


def test_create_validates_body_and_references(alice, bob, refs):
    base, data = refs
    body = {"name": "j", "base_model_id": base.id, "dataset_id": data.id}
    err = assert_error(alice.post("/v1/training/jobs", json={**body, "lora": {"r": 0}}),
                       422, "invalid_argument")
    assert err["field"] == "body.lora.r"
    err = assert_error(alice.post("/v1/training/jobs", json={**body, "dataset_id": "ds_x"}),
                       422, "invalid_argument")
    assert err["field"] == "dataset_id"
    err = assert_error(alice.post("/v1/training/jobs", json={
        **body, "quantization": {"bits": 4}}), 422, "invalid_argument")
    assert "use_gpu" in err["message"]
    assert_error(bob.post("/v1/training/jobs", json=body), 403, "permission_denied")


@pytest.mark.parametrize(("options", "label"), [
    ({"quantization": {"bits": 4}}, "quantization.bits"),
    ({"hyperparameters": {"optim": "adamw_bnb_8bit"}}, "hyperparameters.optim=adamw_bnb_8bit"),
    ({"hyperparameters": {"bf16": True}}, "hyperparameters.bf16"),
    ({"hyperparameters": {"fp16": True}}, "hyperparameters.fp16"),
    ({"scaling": {"deepspeed_stage": 2}}, "scaling.deepspeed_stage"),
])
def test_gpu_only_options_need_use_gpu(alice, refs, catalog_store, options, label):
    base, data = refs
    before = catalog_store.training_jobs.list(page_size=1).total
    err = assert_error(alice.post("/v1/training/jobs", json={
        "name": "gpu", "base_model_id": base.id, "dataset_id": data.id, **options}),
        422, "invalid_argument")
    assert label in err["message"] and "use_gpu" in err["message"]
    assert catalog_store.training_jobs.list(page_size=1).total == before  # nothing stored


def test_openai_method_object_and_method_dataset_match(alice, refs):
    base, data = refs  # an sft (chat) dataset
    body = {"name": "m", "base_model_id": base.id, "dataset_id": data.id}
    err = assert_error(alice.post("/v1/training/jobs", json={
        **body, "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}}),
        422, "invalid_argument")
    assert err["field"] == "method" and "preference" in err["message"]
    err = assert_error(alice.post("/v1/training/jobs", json={
        **body, "method": {"type": "dpo", "dpo": {"hyperparameters": {
            "learning_rate_multiplier": 2}}}}), 422, "invalid_argument")
    assert "learning_rate_multiplier" in err["message"]


def test_create_submits_a_ray_job_then_cancel_stops_it(alice, bob, refs, keys,
                                                       ray_job_address, gateway_url):
    base, data = refs
    r = alice.post("/v1/training/jobs", json={
        "name": "submitted", "base_model_id": base.id, "dataset_id": data.id,
        "hyperparameters": {"max_steps": 1}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["status"], job["user_id"]) == ("queued", "alice")
    assert job["ray_job_id"] == f"garden-train-{job['id']}"
    # the runtime env (shown on the dashboard) carries a token of this job, not alice's key
    env = JobSubmissionClient(ray_job_address).get_job_info(job["ray_job_id"]).runtime_env[
        "env_vars"]
    token = env["GARDEN_JOB_TOKEN"]
    assert token.startswith("gjt_") and keys.alice not in env.values()
    as_token = {"headers": auth(token), "timeout": 60}
    url = f"{gateway_url}/v1/training/jobs/{job['id']}"
    assert httpx.get(url, **as_token).status_code == 200
    assert httpx.post(f"{url}/cancel", **as_token).status_code == 403
    assert_error(bob.post(f"/v1/training/jobs/{job['id']}/cancel"), 403, "permission_denied")
    cancelled = alice.post(f"/v1/training/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    logs = alice.get(f"/v1/training/jobs/{job['id']}/logs").json()
    assert logs["ray_job_id"] == job["ray_job_id"] and isinstance(logs["logs"], str)
    again = alice.post(f"/v1/training/jobs/{job['id']}/cancel")  # idempotent
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    wait_for(lambda: httpx.get(url, **as_token).status_code == 401, 30,
             "the cancelled job's token to be refused")


def test_create_rejects_gpu_only_options_on_a_cpu_cluster(alice, refs, catalog_store):
    base, data = refs
    r = alice.post("/v1/training/jobs", json={
        "name": "gpu", "base_model_id": base.id, "dataset_id": data.id,
        "scaling": {"use_gpu": True}})
    err = assert_error(r, 422, "invalid_argument")
    job = catalog_store.training_jobs.get(err["details"]["job_id"])
    assert job.status == "failed" and job.error_message.startswith("rejected")


def test_cancel_checks_ownership_and_refuses_finished_jobs(alice, bob, job, catalog_store):
    assert_error(bob.post(f"/v1/training/jobs/{job.id}/cancel"), 403, "permission_denied")
    catalog_store.transition_job(job.id, "completed")
    assert_error(alice.post(f"/v1/training/jobs/{job.id}/cancel"), 409, "invalid_transition")
    assert_error(alice.post("/v1/training/jobs/job_missing/cancel"), 404, "not_found")

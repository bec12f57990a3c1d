"""The gateway's reconciler: catalog jobs and batches whose Ray job ended before their
driver recorded anything end cancelled or failed, with a reason.

A round on SQLite and PostgreSQL through the store, with the job API's answer given
(every Ray status, an unknown Ray job before and after the grace period, repeated and
concurrent rounds); then the deployed gateway on the session cluster, ending a real Ray
job's catalog job and batch after ``ray job stop``.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from catalog import schemas as s
from catalog.port import AsyncLocalCatalog
from catalog.reconcile import RayJobState
from serve_apps.gateway.reconcile import reconcile_once
from tests import factories
from tests.conftest import wait_for

GRACE_S = 300.0


class JobApi:
    """The one :class:`serve_apps.gateway.work.Work` operation a round uses, answering
    from ``states`` (submission id -> (status, message)) as the job API would: ids it
    does not know are absent. Records what it was asked."""

    def __init__(self, states: dict[str, tuple[str, str | None]]):
        self.states = states
        self.asked: list[list[str]] = []

    async def ray_job_states(self, submission_ids):
        self.asked.append(list(submission_ids))
        return {i: RayJobState(i, *self.states[i]) for i in submission_ids if i in self.states}


def _batch(store, status: str, ray_job_id: str) -> s.Batch:
    data = factories.dataset(store, f"req-{uuid.uuid4().hex[:6]}", format="openai_batch")
    batch = store.create_batch(s.BatchCreate(input_file_id=data.id,
                                             endpoint="/v1/chat/completions"))
    store.batches.update(batch.id, ray_job_id=ray_job_id)
    if status != "validating":
        store.claim_batch(batch.id, ray_job_id)
    if status == "cancelling":
        store.transition_batch(batch.id, "cancelling")
    return store.batches.get(batch.id)


def _job(store, status: str, ray_job_id: str | None) -> s.TrainingJob:
    tag = uuid.uuid4().hex[:6]
    job = factories.job(store, base=factories.base_model(store, f"b-{tag}"),
                        data=factories.dataset(store, f"d-{tag}"))
    if status != "pending":
        store.transition_job(job.id, "queued", ray_job_id=ray_job_id)
    if status in ("running", "completed"):
        store.transition_job(job.id, "running")
    if status == "completed":
        store.transition_job(job.id, "completed")
    return store.training_jobs.get(job.id)


async def test_a_round_ends_each_row_as_its_ray_job_ended(store):
    api = JobApi({"r-stopped": ("STOPPED", "Job was intentionally stopped."),
                  "r-failed": ("FAILED", "Job entrypoint command failed with exit code 1"),
                  "r-succeeded": ("SUCCEEDED", "Job finished successfully."),
                  "r-running": ("RUNNING", None), "r-done": ("FAILED", None),
                  "rb-stopped": ("STOPPED", None), "rb-failed": ("FAILED", "exit code 1"),
                  "rb-cancelling": ("FAILED", None)})
    jobs = {name: _job(store, status, ray_id) for name, status, ray_id in [
        ("stopped", "queued", "r-stopped"), ("failed", "running", "r-failed"),
        ("succeeded", "running", "r-succeeded"), ("running", "running", "r-running"),
        ("missing", "queued", "r-missing"), ("completed", "completed", "r-done"),
        ("unsubmitted", "pending", None)]}
    batches = {name: _batch(store, status, ray_id) for name, status, ray_id in [
        ("stopped", "in_progress", "rb-stopped"), ("failed", "validating", "rb-failed"),
        ("cancelling", "cancelling", "rb-cancelling"), ("missing", "in_progress", "rb-gone")]}
    cat = AsyncLocalCatalog(store)

    changes = await reconcile_once(cat, api, grace_s=GRACE_S, timeout_s=30)

    def job(name):
        return store.training_jobs.get(jobs[name].id)

    def batch(name):
        return store.batches.get(batches[name].id)

    # one question for every live row's Ray job: not the ended or the unsubmitted jobs'
    assert api.asked == [sorted(["r-stopped", "r-failed", "r-succeeded", "r-running",
                                 "r-missing", "rb-stopped", "rb-failed", "rb-cancelling",
                                 "rb-gone"])]
    assert (job("stopped").status, job("stopped").error_message) == ("cancelled", (
        "Ray job r-stopped ended STOPPED before its driver recorded an end: "
        "Job was intentionally stopped."))
    assert job("failed").status == "failed"
    assert job("failed").error_message.endswith("ended FAILED before its driver recorded "
                                                "an end: Job entrypoint command failed "
                                                "with exit code 1")
    assert (job("succeeded").status, "ended SUCCEEDED" in job("succeeded").error_message) == (
        "failed", True)
    assert job("completed").status == "completed" and job("completed").error_message is None
    for name in ("running", "missing"):  # still running; unknown but within its grace
        assert job(name).status == jobs[name].status
    assert job("unsubmitted").status == "pending"

    assert batch("stopped").status == "cancelled" and batch("stopped").cancelling_at
    events = [e["message"] for e in store.list_batch_events(batches["stopped"].id)]
    assert events[-2:] == ["status -> cancelling", "status -> cancelled: Ray job rb-stopped "
                           "ended STOPPED before its driver recorded an end"]
    failed = batch("failed")
    assert failed.status == "failed" and [(e.code, e.message) for e in failed.errors.data] == [
        ("ray_job_ended",
         "Ray job rb-failed ended FAILED before its driver recorded an end: exit code 1")]
    assert batch("cancelling").status == "cancelled"  # cancel asked: whatever the end
    assert batch("missing").status == "in_progress"
    assert sorted((c.kind, c.before, c.after) for c in changes) == sorted([
        ("training job", "queued", "cancelled"), ("training job", "running", "failed"),
        ("training job", "running", "failed"), ("batch", "in_progress", "cancelled"),
        ("batch", "validating", "failed"), ("batch", "cancelling", "cancelled")])

    # past the grace period, an unknown Ray job fails its row
    later = datetime.now(UTC) + timedelta(seconds=GRACE_S + 1)
    changes = await reconcile_once(cat, api, grace_s=GRACE_S, timeout_s=30, now=later)
    assert {c.row_id for c in changes} == {jobs["missing"].id, batches["missing"].id}
    assert job("missing").status == "failed"
    assert job("missing").error_message.startswith("Ray job r-missing not found")
    assert batch("missing").status == "failed"
    assert batch("missing").errors.data[0].message.startswith("Ray job rb-gone not found")
    assert job("running").status == "running"

    # a repeated round finds nothing more to do
    assert await reconcile_once(cat, api, grace_s=GRACE_S, timeout_s=30, now=later) == []


async def test_concurrent_rounds_move_each_row_once(store):
    """Several gateway replicas reconcile at once: each row ends once, with one event per
    move, and no round fails."""
    api = JobApi({"c-job": ("STOPPED", None), "c-batch": ("STOPPED", None)})
    job = _job(store, "running", "c-job")
    batch = _batch(store, "in_progress", "c-batch")
    cat = AsyncLocalCatalog(store)
    await asyncio.gather(*(reconcile_once(cat, api, grace_s=GRACE_S, timeout_s=30)
                           for _ in range(4)))
    assert store.training_jobs.get(job.id).status == "cancelled"
    assert store.batches.get(batch.id).status == "cancelled"
    job_events = [e["message"] for e in store.list_events(job.id)]
    assert sum(m.startswith("status -> cancelled") for m in job_events) == 1
    batch_events = [e["message"] for e in store.list_batch_events(batch.id)]
    assert batch_events.count("status -> cancelling") == 1
    assert sum(m.startswith("status -> cancelled") for m in batch_events) == 1


def test_the_grace_period_must_outlast_a_submission():
    from serve_apps.gateway import GatewayConfig

    with pytest.raises(ValueError, match=r"reconcile_grace_s \(100\) must exceed"):
        GatewayConfig(reconcile_grace_s=100)  # a submission may take 120 + 60 s
    assert GatewayConfig(reconcile_grace_s=100, submit_timeout_s=30).reconcile_grace_s == 100


@pytest.mark.ray
def test_a_ray_job_stopped_before_its_driver_starts_ends_cancelled(
    alice, catalog_store, ray_job_address,
):
    """A catalog job and a batch whose Ray jobs (``sleep`` before the driver) are stopped
    with ``ray job stop`` before their driver starts end cancelled, through the deployed
    gateway's reconciler, within its period (tests/gateway/fixtures.py); so does a batch
    checked by ``batch_jobs.submit.reconcile_batch`` (what ``cancel_batch`` waits on)."""
    from batch_jobs.submit import reconcile_batch
    from ray_jobs.submit import job_client

    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"rbase-{tag}", published=True)
    data = factories.dataset(catalog_store, f"rdata-{tag}", user_id="alice")
    job = factories.job(catalog_store, base=base, data=data, name="stopped", user_id="alice")
    job_sub = f"garden-train-{job.id}"
    catalog_store.transition_job(job.id, "queued", ray_job_id=job_sub)
    lines = factories.dataset(catalog_store, f"rreq-{tag}", format="openai_batch",
                              user_id="alice")
    batch = catalog_store.create_batch(
        s.BatchCreate(input_file_id=lines.id, endpoint="/v1/chat/completions"),
        user_id="alice")
    batch_sub = f"garden-batch-{batch.id}"
    catalog_store.claim_batch(batch.id, batch_sub)  # in_progress, as a started run leaves it
    # a second batch, still validating, for reconcile_batch (cancel_batch's own check)
    other = catalog_store.create_batch(
        s.BatchCreate(input_file_id=lines.id, endpoint="/v1/chat/completions"),
        user_id="alice")
    other_sub = f"garden-batch-{other.id}"
    catalog_store.batches.update(other.id, ray_job_id=other_sub)

    client = job_client(ray_job_address)
    subs = {job_sub: f"train_jobs.run --job-id {job.id}",
            batch_sub: f"batch_jobs.run --batch-id {batch.id}",
            other_sub: f"batch_jobs.run --batch-id {other.id}"}  # stopped last
    for sub, driver in subs.items():
        client.submit_job(entrypoint=f"sleep 600; {sys.executable} -m {driver}",
                          submission_id=sub)
    for sub in subs:
        wait_for(lambda sub=sub: client.get_job_status(sub) == "RUNNING", 60,
                 f"{sub} to start its sleep")
        client.stop_job(sub)
    for sub in subs:
        wait_for(lambda sub=sub: client.get_job_status(sub) == "STOPPED", 60, f"{sub} to stop",
                 interval_s=0.1)
        if sub == other_sub:  # checked at once, mostly before the gateway's next round
            # (which, when it comes first, ends the batch the same way)
            assert reconcile_batch(other.id, address=ray_job_address).status == "cancelled"

    ended = wait_for(lambda: (j := alice.get(f"/v1/training/jobs/{job.id}").json())[
        "status"] != "queued" and j, 30, "the reconciler to end the job")
    assert ended["status"] == "cancelled"
    assert ended["error_message"].startswith(f"Ray job {job_sub} ended STOPPED")
    b = wait_for(lambda: (b := alice.get(f"/v1/batches/{batch.id}").json())[
        "status"] not in ("in_progress", "cancelling") and b, 30,
        "the reconciler to end the batch")
    assert b["status"] == "cancelled"

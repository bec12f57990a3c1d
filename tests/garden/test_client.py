"""garden.Client against the live gateway on Ray Serve, and its retry transport."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from catalog import schemas as s
from garden import Client
from garden.client.transport import RetryTransport
from garden.errors import (
    AuthenticationError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    ValidationFailedError,
)
from tests import factories

ROWS = [{"instruction": f"say {i}", "input": "", "output": f"{i}"} for i in range(4)]


@pytest.fixture
def client(gateway_url, keys):
    with Client(gateway_url, keys.alice) as c:
        yield c


@pytest.mark.ray
def test_dataset_round_trip_typed(client, tmp_path):
    path = tmp_path / "alpaca-set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS))
    ds = client.datasets.upload(path, description="four rows")
    assert isinstance(ds, s.Dataset)
    assert (ds.name, ds.format, ds.num_rows) == ("alpaca-set", "alpaca", 4)
    assert client.datasets.preview(ds.id, limit=2) == ROWS[:2]
    page = client.datasets.list(name="alpaca-set")
    assert page.total == 1 and page.items[0].id == ds.id
    assert [d.id for d in client.datasets.iterate(name="alpaca-set")] == [ds.id]
    client.datasets.delete(ds.id)
    with pytest.raises(NotFoundError) as info:
        client.datasets.get(ds.id)
    assert info.value.error.code == "not_found" and info.value.status == 404


@pytest.mark.ray
def test_errors_are_typed_and_carry_the_error_response(gateway_url, keys, client):
    with pytest.raises(AuthenticationError):
        Client(gateway_url, "gk_wrong").datasets.list()
    with pytest.raises(ValidationFailedError) as info:
        client.datasets.upload(b'{"nonsense": 1}\n', name="bad")
    assert info.value.error.details[0]["line"] == 1
    with pytest.raises(PermissionDeniedError):
        client.keys.create("alice", "self-service")


@pytest.mark.ray
def test_training_job_wait_reports_progress(client, catalog_store):
    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"wbase-{tag}", path="/m", published=True)
    data = factories.dataset(catalog_store, f"wdata-{tag}", rows=1, format="alpaca", path="/d",
                             size_bytes=1, user_id="alice")
    seeded = factories.job(catalog_store, base=base, data=data, name="w", user_id="alice")
    catalog_store.transition_job(seeded.id, "queued")
    catalog_store.transition_job(seeded.id, "running")
    catalog_store.append_metrics(seeded.id, [s.MetricPoint(step=1, train_loss=1.5)])

    job = client.training.get(seeded.id)
    assert job.status == "running" and not job.done
    seen = []

    def progress(j, points):
        seen.append((j.status, len(points)))
        if len(seen) == 1:  # the job finishes while we wait
            catalog_store.transition_job(j.id, "completed")

    done = job.wait(timeout_s=60, poll_interval_s=0.2, on_progress=progress)
    assert done.status == "completed" and seen[0] == ("running", 1) and seen[-1][0] == "completed"
    assert [e["message"] for e in client.training.events(job.id)["items"]][-1] == (
        "status -> completed")
    assert [p.train_loss for p in job.metrics()] == [1.5]

    failing = factories.job(catalog_store, base=base, data=data, name="f", user_id="alice")
    catalog_store.transition_job(failing.id, "failed", error_message="out of memory")
    with pytest.raises(JobFailedError, match="out of memory"):
        client.training.get(failing.id).wait(timeout_s=10)
    pending = factories.job(catalog_store, base=base, data=data, name="p", user_id="alice")
    with pytest.raises(TimeoutError):
        client.training.get(pending.id).wait(timeout_s=0.5, poll_interval_s=0.2)
    assert client.training.list(dataset_id=data.id).total == 3


@pytest.mark.ray
def test_carbon_health_system_and_openai_url(client, gateway_url):
    summary = client.carbon.summary(group_by="source")
    assert isinstance(summary, s.CarbonSummary)
    assert client.health()["components"]["database"]["status"] == "healthy"
    assert client.system()["database"] == "sqlite"
    assert client.openai_base_url == f"{gateway_url}/openai/v1"
    assert str(client.openai().base_url).rstrip("/") == f"{gateway_url}/openai/v1"


def _flaky_server(statuses: list[int], seen: list[str]):
    """An httpx MockTransport answering ``statuses`` in turn (then 200)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        status = statuses.pop(0) if statuses else 200
        headers = {"Retry-After": "1"} if status == 429 else {}
        return httpx.Response(status, json={"ok": status == 200}, headers=headers)

    return httpx.MockTransport(handler)


def test_retry_transport_retries_idempotent_requests_honouring_retry_after():
    waits, seen = [], []
    transport = RetryTransport(_flaky_server([503, 429], seen), sleep=waits.append,
                               backoff_s=0.25, max_backoff_s=5)
    with httpx.Client(transport=transport, base_url="http://garden.test") as http:
        assert http.get("/v1/models").status_code == 200
    assert seen == ["GET"] * 3
    assert 0 <= waits[0] <= 0.25 and waits[1] == 1.0


def test_retry_transport_never_retries_posts_and_gives_up_after_max_attempts():
    waits, seen = [], []
    transport = RetryTransport(_flaky_server([503], seen), sleep=waits.append)
    with httpx.Client(transport=transport, base_url="http://garden.test") as http:
        assert http.post("/v1/training/jobs", json={}).status_code == 503
    assert seen == ["POST"] and waits == []
    seen.clear()
    transport = RetryTransport(_flaky_server([503] * 5, seen), sleep=waits.append,
                               max_attempts=3)
    with httpx.Client(transport=transport, base_url="http://garden.test") as http:
        assert http.delete("/v1/datasets/x").status_code == 503
    assert seen == ["DELETE"] * 3

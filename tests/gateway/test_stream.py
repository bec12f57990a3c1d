"""``GET /v1/training/jobs/{id}/stream``: server-sent events of a job's life.

The jobs are catalog rows driven by the test through the catalog (as a running training
job drives them: transitions, metric points, events) while a client reads the stream
from the gateway on the session cluster. The last two tests run the gateway app in
process (uvicorn over a SQLite store), where the process's live streams can be counted.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from catalog import schemas as s
from garden.client import Client
from garden.client.training import ServerSentEvent, iter_sse
from garden.errors import JobFailedError
from tests import factories
from tests.gateway.fixtures import assert_error, auth


@pytest.fixture
def refs(catalog_store):
    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"sbase-{tag}", path="/models/x", published=True)
    data = factories.dataset(catalog_store, f"sdata-{tag}", rows=3, path="/data/x.jsonl",
                             size_bytes=9, user_id="alice")
    return base, data


@pytest.fixture
def new_job(catalog_store, refs):
    """Makes a pending job of alice's (a catalog row; nothing trains)."""
    base, data = refs
    return lambda: factories.job(catalog_store, base=base, data=data, name="streamed",
                                 user_id="alice")


class Reader:
    """One open stream: ``until(kind)`` reads events up to the next of that kind."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.events = iter_sse(response.iter_lines())
        self.seen: list[ServerSentEvent] = []

    def until(self, kind: str) -> dict:
        for event in self.events:
            self.seen.append(event)
            if event.event == kind:
                return json.loads(event.data)
        raise AssertionError(f"the stream ended before a {kind} event: {self.seen}")

    def rest(self) -> list[ServerSentEvent]:
        self.until("end")
        return self.seen


@contextmanager
def stream(client: httpx.Client, job_id: str, last_id: str | None = None) -> Iterator[Reader]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with client.stream("GET", f"/v1/training/jobs/{job_id}/stream", headers=headers,
                       timeout=httpx.Timeout(30.0)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Reader(response)


def data(events: list[ServerSentEvent], kind: str) -> list[dict]:
    return [json.loads(e.data) for e in events if e.event == kind]


def log_lines(events: list[ServerSentEvent]) -> list[tuple[str, str]]:
    """The event-log part of a stream (status changes and log lines), as sent."""
    return [(e.event, e.data) for e in events if e.event in ("status_change", "log")]


@pytest.mark.ray
def test_status_changes_metrics_and_logs_arrive_in_order(alice, catalog_store, new_job):
    job = new_job()
    with stream(alice, job.id) as reader:
        first = reader.until("progress")  # caught up with the pending job
        assert first["status"] == "pending" and first["progress"] == 0.0
        catalog_store.transition_job(job.id, "running")
        assert reader.until("status_change")["new_status"] == "running"
        catalog_store.append_metrics(job.id, [s.MetricPoint(step=1, train_loss=2.5)])
        assert reader.until("metrics")["metrics"]["train_loss"] == 2.5
        # the eval loss of step 1 merges into its row: the step is sent again, merged
        catalog_store.append_metrics(job.id, [s.MetricPoint(step=1, eval_loss=2.25)])
        merged = reader.until("metrics")["metrics"]
        assert (merged["step"], merged["train_loss"], merged["eval_loss"]) == (1, 2.5, 2.25)
        catalog_store.append_metrics(job.id, [s.MetricPoint(step=2, train_loss=2.0)])
        catalog_store.add_event(job.id, s.JobEvent(level="warning", message="hot node"))
        catalog_store.transition_job(job.id, "completed", current_step=2, total_steps=2,
                                     progress=1.0)
        events = reader.rest()
    changes = [(c["old_status"], c["new_status"]) for c in data(events, "status_change")]
    assert changes == [("pending", "running"), ("running", "completed")]
    assert [(m["step"], m["metrics"].get("eval_loss")) for m in data(events, "metrics")] == [
        (1, None), (1, 2.25), (2, None)]
    logs = data(events, "log")
    assert [(entry["level"], entry["message"]) for entry in logs] == [
        ("INFO", "job created"), ("WARNING", "hot node")]
    seqs = [d["seq"] for d in [*logs, *data(events, "status_change")]]
    assert len(set(seqs)) == len(seqs)
    assert data(events, "progress")[-1] | {"type": "progress"} == {
        "type": "progress", "status": "completed", "progress": 1.0, "current_step": 2,
        "total_steps": 2, "current_epoch": 0.0, "total_epochs": 0.0}
    assert events[-1].event == "end" and json.loads(events[-1].data)["status"] == "completed"
    assert all(e.id for e in events)
    # the order of the log: each status change after the lines recorded before it
    kinds = [e.event for e in events if e.event in ("status_change", "log")]
    assert kinds == ["log", "status_change", "log", "status_change"]


@pytest.mark.ray
def test_a_reconnecting_client_resumes_after_its_last_event_id(alice, catalog_store, new_job):
    job = new_job()
    catalog_store.transition_job(job.id, "running")
    catalog_store.append_metrics(job.id, [s.MetricPoint(step=1, train_loss=3.0)])
    with stream(alice, job.id) as reader:
        reader.until("progress")
        before = list(reader.seen)
    last_id = before[-1].id
    assert [e.event for e in before] == ["log", "status_change", "metrics", "progress"]
    # while the client is away: a line, an eval loss merged into the step it saw, a new
    # step, the end
    catalog_store.add_event(job.id, s.JobEvent(message="while away"))
    catalog_store.append_metrics(job.id, [s.MetricPoint(step=1, eval_loss=2.5),
                                          s.MetricPoint(step=2, train_loss=2.0)])
    catalog_store.transition_job(job.id, "completed")
    with stream(alice, job.id, last_id) as reader:
        after = reader.rest()
    with stream(alice, job.id) as reader:
        whole = reader.rest()
    # nothing twice, nothing missed: the log as one stream would have sent it
    assert log_lines(before) + log_lines(after) == log_lines(whole)
    assert [json.loads(e.data)["message"] for e in after if e.event == "log"] == ["while away"]
    # metric points: the merged step once more, then the new one; last values per step agree
    assert [(m["step"], m["metrics"].get("eval_loss")) for m in data(after, "metrics")] == [
        (1, 2.5), (2, None)]

    def last_per_step(events):
        return {m["step"]: m["metrics"] for m in data(events, "metrics")}

    assert last_per_step(before + after) == last_per_step(whole)
    assert after[-1].event == "end"
    # resuming from the end event itself sends only the end again
    with stream(alice, job.id, after[-1].id) as reader:
        assert [e.event for e in reader.rest()] == ["progress", "end"]


@pytest.mark.ray
def test_stream_refuses_other_users_missing_jobs_and_bad_ids(alice, bob, new_job):
    job = new_job()
    assert_error(bob.get(f"/v1/training/jobs/{job.id}/stream"), 403, "permission_denied")
    assert_error(alice.get("/v1/training/jobs/job_missing/stream"), 404, "not_found")
    err = assert_error(alice.get(f"/v1/training/jobs/{job.id}/stream",
                                 headers={"Last-Event-ID": "nonsense"}), 422, "invalid_argument")
    assert err["field"] == "Last-Event-ID"


@pytest.mark.ray
def test_client_wait_follows_the_stream(gateway_url, keys, catalog_store, new_job):
    job = new_job()

    def drive() -> None:
        time.sleep(1.0)
        catalog_store.transition_job(job.id, "running", total_steps=2)
        catalog_store.append_metrics(job.id, [s.MetricPoint(step=1, train_loss=2.5)])
        time.sleep(1.0)
        catalog_store.append_metrics(job.id, [s.MetricPoint(step=2, train_loss=2.0)])
        catalog_store.transition_job(job.id, "completed", current_step=2, progress=1.0)

    calls: list[tuple[str, list[int]]] = []
    driver = threading.Thread(target=drive)
    with Client(gateway_url, keys.alice) as client:
        handle = client.training.get(job.id)
        driver.start()
        done = handle.wait(timeout_s=60, on_progress=lambda j, points: calls.append(
            (str(j.status), [p.step for p in points])))
        driver.join()
        assert done.status == "completed" and done.progress == 1.0
        assert calls[0] == ("pending", []) and calls[-1] == ("completed", [1, 2])
        assert ("running", [1]) in calls
        # Job.stream: the whole life again, and from an id on
        events = list(done.stream())
        assert [e["type"] for e in events if e["type"] != "progress"] == [
            "log", "status_change", "metrics", "metrics", "status_change", "end"]
        resumed = list(done.stream(last_event_id=events[2]["id"]))
        assert [e for e in resumed if e["type"] != "progress"] == [
            e for e in events[3:] if e["type"] != "progress"]
        # a failed job raises; a job that does not finish in time raises TimeoutError
        failed = new_job()
        catalog_store.transition_job(failed.id, "failed", error_message="boom")
        with pytest.raises(JobFailedError):
            client.training.get(failed.id).wait(timeout_s=30)
        assert client.training.get(failed.id).wait(raise_on_failure=False).status == "failed"
        with pytest.raises(TimeoutError, match="still pending"):
            client.training.get(new_job().id).wait(timeout_s=1.5)


# --------------------------------------------------------------------------- in process


def _serve(app, port: int):
    """Run ``app`` with uvicorn on ``port`` in a thread; returns the started server."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=1))
    server.thread = threading.Thread(target=server.run, daemon=True)  # type: ignore[attr-defined]
    server.thread.start()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return server


def _stop(server) -> None:
    server.should_exit = True
    server.thread.join(timeout=10)


@pytest.fixture
def local_gateway(sqlite_url, monkeypatch):
    """The gateway app served by uvicorn in this process over a SQLite store: its URL,
    admin key, store, app and a function that serves it again after a stop."""
    from catalog.port import AsyncLocalCatalog
    from catalog.store import CatalogStore
    from serve_apps.gateway import create_app

    monkeypatch.setenv("GARDEN_ADMIN_KEY", "gk_local_admin")
    monkeypatch.setenv("GARDEN_STREAM_POLL_S", "0.05")
    monkeypatch.setenv("GARDEN_STREAM_KEEPALIVE_S", "0.3")
    store = CatalogStore.open(sqlite_url)
    app = create_app()
    app.state.catalog = AsyncLocalCatalog(store)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers = [_serve(app, port)]

    def restart() -> None:
        _stop(servers[-1])
        servers.append(_serve(app, port))

    yield f"http://127.0.0.1:{port}", "gk_local_admin", store, restart
    _stop(servers[-1])
    store.close()


def test_idle_stream_sends_keepalives_and_a_gone_client_stops_its_loop(local_gateway):
    from serve_apps.gateway.stream import active_streams

    url, key, store, _ = local_gateway
    job = factories.job(store)
    with httpx.Client(base_url=url, headers=auth(key), timeout=10) as client:
        with client.stream("GET", f"/v1/training/jobs/{job.id}/stream") as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("event: progress"))
            assert next(line for line in lines if line.startswith(":")) == ": keep-alive"
            assert active_streams() == 1
        deadline = time.monotonic() + 10
        while active_streams() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert active_streams() == 0
        # a job that ended before the client came: its whole life, then end
        store.transition_job(job.id, "cancelled")
        body = client.get(f"/v1/training/jobs/{job.id}/stream").text
        events = list(iter_sse(body.splitlines()))
        assert [e.event for e in events] == ["log", "status_change", "progress", "end"]
        assert json.loads(events[1].data)["old_status"] == "pending"
    assert active_streams() == 0


def test_client_stream_resumes_after_the_server_drops_it(local_gateway):
    url, key, store, restart = local_gateway
    job = factories.job(store)
    store.transition_job(job.id, "running")
    with Client(url, key) as client:
        events = client.training.stream(job.id, timeout_s=60, reconnect_delay_s=0.1)
        head = [next(events) for _ in range(3)]  # log, status_change, progress
        assert [e["type"] for e in head] == ["log", "status_change", "progress"]
        restart()  # the server goes away with the connection, and comes back
        store.append_metrics(job.id, [s.MetricPoint(step=1, train_loss=1.0)])
        store.transition_job(job.id, "completed")
        tail = list(events)
        whole = list(client.training.stream(job.id))
    assert [e for e in head + tail if e["type"] != "progress"] == [
        e for e in whole if e["type"] != "progress"]
    assert [e["type"] for e in tail if e["type"] != "progress"] == [
        "metrics", "status_change", "end"]


def _replica_streams() -> list[int]:
    """:func:`active_streams` of every gateway replica, read in the replica's process."""
    import ray

    from serve_apps.gateway.stream import active_streams

    names = [a for a in ray.util.list_named_actors(all_namespaces=True)
             if "SERVE_REPLICA" in a["name"] and "gateway" in a["name"].lower()]
    actors = [ray.get_actor(a["name"], namespace=a["namespace"]) for a in names]
    return ray.get([actor.__ray_call__.remote(lambda _self: active_streams())
                    for actor in actors], timeout=30)


@pytest.mark.ray
def test_a_gone_client_leaves_no_polling_loop_in_the_replica(alice, new_job):
    job = new_job()
    assert sum(_replica_streams()) == 0
    with stream(alice, job.id) as reader:
        reader.until("progress")
        assert sum(_replica_streams()) == 1
    deadline = time.monotonic() + 10
    while sum(_replica_streams()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(_replica_streams()) == 0

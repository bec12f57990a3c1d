"""A local server following Replicate's HTTP API (https://replicate.com/docs/reference/http):
predictions create (by model or version), get, list, cancel; file URLs that expire;
signed webhooks (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature).

Prompt markers: ``[fail]`` fails the job, ``[slow]`` makes it take ``slow_s``.
``input.num_outputs`` output URLs come back (default 1); the flux models' input schemas
are enforced as Replicate does (422 naming ``input.<field>``): ``num_outputs`` 1..4, and
flux-dev's ``guidance`` 0..10. Other inputs are taken as given.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.serve_apps.media.fakes.common import FakeServer, FakeState, mp4_bytes, png_bytes


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``{id}.{timestamp}.{body}`` (Replicate's spec)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


#: Input limits of the models whose schema the fake checks: field -> (min, max).
SCHEMAS: dict[str, dict[str, tuple[float, float]]] = {
    "black-forest-labs/flux-schnell": {"num_outputs": (1, 4)},
    "black-forest-labs/flux-dev": {"num_outputs": (1, 4), "guidance": (0, 10)},
}


def _invalid_input(model: str, data: dict) -> str | None:
    """Replicate's validation message for the first input outside its schema's range."""
    for name, (low, high) in SCHEMAS.get(model, {}).items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float):
            return f"input.{name}: Invalid type. Expected: number"
        if value < low:
            return f"input.{name}: Must be greater than or equal to {low}"
        if value > high:
            return f"input.{name}: Must be less than or equal to {high}"
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def build(state: FakeState, webhook_secret: str) -> FastAPI:
    app = FastAPI()
    tasks: set[asyncio.Task] = set()

    def problem(status: int, detail: str, retry_after: float | None = None) -> JSONResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
        return JSONResponse({"type": "about:blank", "title": detail, "detail": detail,
                             "status": status}, status_code=status, headers=headers)

    def guard(request: Request, key: str) -> JSONResponse | None:
        state.calls[key] += 1
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return problem(401, "You did not pass a valid authentication token")
        fault = state.faults.take(key)
        if fault:
            return problem(fault[0], "injected fault", fault[1])
        return None

    def body_of(job: dict) -> dict:
        base = app.state.base_url
        return {k: v for k, v in job.items() if not k.startswith("_")} | {
            "urls": {"get": f"{base}/v1/predictions/{job['id']}",
                     "cancel": f"{base}/v1/predictions/{job['id']}/cancel"}}

    async def deliver(job: dict, event: str) -> None:
        url = job.get("_webhook")
        if not url or (job.get("_filter") and event not in job["_filter"]):
            return
        text = json.dumps(body_of(job))
        wid, ts = f"msg_{uuid.uuid4().hex}", int(time.time())
        headers = {"webhook-id": wid, "webhook-timestamp": str(ts),
                   "webhook-signature": sign(webhook_secret, wid, ts, text),
                   "content-type": "application/json"}
        state.calls["webhook_sent"] += 1
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                await client.post(url, content=text, headers=headers)
            except httpx.HTTPError:
                state.calls["webhook_failed"] += 1

    async def run(job: dict) -> None:
        await asyncio.sleep(0.05)
        if job["status"] != "starting":
            return
        job["status"], job["started_at"] = "processing", _now()
        await asyncio.sleep(state.duration(job["input"].get("prompt")))
        if job["status"] != "processing":
            return
        job["completed_at"] = _now()
        if "[fail]" in (job["input"].get("prompt") or ""):
            job["status"], job["error"] = "failed", "CUDA out of memory (simulated)"
        else:
            ext = "mp4" if "video" in job["model"] else "png"
            job["status"] = "succeeded"
            count = int(job["input"].get("num_outputs") or 1)
            job["output"] = [f"{app.state.base_url}/files/{job['id']}/{i}.{ext}"
                             for i in range(count)]
            job["_done"] = time.time()
        await deliver(job, "completed")

    async def create(request: Request, model: str, version: str) -> Response:
        bad = guard(request, "create")
        if bad:
            return bad
        body = await request.json()
        if not isinstance(body.get("input"), dict):
            return problem(422, "input: Invalid type. Expected: object")
        invalid = _invalid_input(model, body["input"])
        if invalid:
            return problem(422, invalid)
        state.sent.append(("create", body))
        job = {"id": uuid.uuid4().hex[:20], "model": model, "version": version,
               "status": "starting", "input": body["input"], "output": None, "logs": "",
               "error": None, "metrics": {"predict_time": state.job_s},
               "created_at": _now(), "started_at": None, "completed_at": None,
               "_webhook": body.get("webhook"), "_filter": body.get("webhook_events_filter")}
        state.jobs[job["id"]] = job
        for coro in (deliver(job, "start"), run(job)):  # webhooks are sent asynchronously
            task = asyncio.get_running_loop().create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return JSONResponse(body_of(job), status_code=201)

    @app.post("/v1/models/{owner}/{name}/predictions")
    async def create_by_model(owner: str, name: str, request: Request):
        return await create(request, f"{owner}/{name}", "")

    @app.post("/v1/predictions")
    async def create_by_version(request: Request):
        body = await request.json()
        return await create(request, "owner/model", body.get("version", ""))

    @app.get("/v1/predictions/{pid}")
    async def get(pid: str, request: Request):
        bad = guard(request, "get")
        if bad:
            return bad
        job = state.jobs.get(pid)
        return JSONResponse(body_of(job)) if job else problem(404, "Not found")

    @app.get("/v1/predictions")
    async def list_(request: Request):
        bad = guard(request, "list")
        if bad:
            return bad
        results = [body_of(j) for j in reversed(state.jobs.values())][:100]
        return {"previous": None, "next": None, "results": results}

    @app.post("/v1/predictions/{pid}/cancel")
    async def cancel(pid: str, request: Request):
        bad = guard(request, "cancel")
        if bad:
            return bad
        job = state.jobs.get(pid)
        if job is None:
            return problem(404, "Not found")
        if job["status"] in ("starting", "processing"):
            job["status"], job["completed_at"] = "canceled", _now()
        return JSONResponse(body_of(job))

    @app.get("/files/{pid}/{name}")
    async def files(pid: str, name: str):
        job = state.jobs.get(pid)
        if job is None or time.time() - job.get("_done", 0) > state.file_ttl_s:
            return problem(404, "file expired")
        if name.endswith(".mp4"):
            return Response(mp4_bytes(), media_type="video/mp4")
        return Response(png_bytes(96, 64), media_type="image/png")

    return app


def start(token: str = "r8_test_token", webhook_secret: str | None = None):
    """Start the fake; returns ``(server, secret)`` (``whsec_<base64>``)."""
    secret = webhook_secret or "whsec_" + base64.b64encode(b"replicate-test-secret").decode()
    state = FakeState(token=token)
    return FakeServer(build(state, secret), state).start(), secret

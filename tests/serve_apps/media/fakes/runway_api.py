"""A local server following Runway's API (https://docs.dev.runwayml.com/api/):
``POST /v1/text_to_video`` and ``/v1/image_to_video`` answer ``{"id"}``; tasks move
PENDING (THROTTLED with ``[throttled]`` in the prompt) -> RUNNING -> SUCCEEDED or FAILED
(``[fail]``); ``DELETE /v1/tasks/{id}`` cancels. ``X-Runway-Version`` is required.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.serve_apps.media.fakes.common import FakeServer, FakeState, mp4_bytes

VERSION = "2024-11-06"


def build(state: FakeState) -> FastAPI:
    app = FastAPI()

    def error(status: int, message: str, retry_after=None) -> JSONResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def guard(request: Request, key: str):
        state.calls[key] += 1
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return error(401, "Invalid API key")
        if request.headers.get("x-runway-version") != VERSION:
            return error(400, "X-Runway-Version header is required")
        fault = state.faults.take(key)
        if fault:
            return error(fault[0], "injected fault", fault[1])
        return None

    async def create(request: Request, kind: str):
        bad = guard(request, "create")
        if bad:
            return bad
        body = await request.json()
        if not body.get("model") or not body.get("ratio"):
            return error(400, "model and ratio are required")
        if kind == "image_to_video" and not str(body.get("promptImage", "")).startswith(
                "data:image/"):
            return error(400, "promptImage must be an HTTPS URL or a data URI")
        task_id = str(uuid.uuid4())
        prompt = body.get("promptText", "")
        state.sent.append((kind, body))
        state.jobs[task_id] = {"created": time.time(), "duration": state.duration(prompt),
                               "prompt": prompt, "cancelled": False, "kind": kind,
                               "body": body}
        return {"id": task_id}

    @app.post("/v1/text_to_video")
    async def text_to_video(request: Request):
        return await create(request, "text_to_video")

    @app.post("/v1/image_to_video")
    async def image_to_video(request: Request):
        return await create(request, "image_to_video")

    @app.get("/v1/tasks/{task_id}")
    async def task(task_id: str, request: Request):
        bad = guard(request, "get")
        if bad:
            return bad
        job = state.jobs.get(task_id)
        if job is None:
            return error(404, "Task not found")
        elapsed = time.time() - job["created"]
        body = {"id": task_id, "createdAt": datetime.fromtimestamp(
            job["created"], UTC).isoformat()}
        if job["cancelled"]:
            return body | {"status": "CANCELLED"}
        if elapsed < min(0.1, job["duration"] / 3):
            status = "THROTTLED" if "[throttled]" in job["prompt"] else "PENDING"
            return body | {"status": status}
        if elapsed < job["duration"]:
            return body | {"status": "RUNNING", "progress": round(elapsed / job["duration"], 2)}
        if "[fail]" in job["prompt"]:
            return body | {"status": "FAILED", "failure": "Generation failed",
                           "failureCode": "INTERNAL.BAD_OUTPUT"}
        if time.time() - job["created"] - job["duration"] > state.file_ttl_s:
            return body | {"status": "SUCCEEDED", "output": []}
        return body | {"status": "SUCCEEDED",
                       "output": [f"{app.state.base_url}/files/{task_id}.mp4"]}

    @app.delete("/v1/tasks/{task_id}", status_code=204)
    async def cancel(task_id: str, request: Request):
        bad = guard(request, "cancel")
        if bad:
            return bad
        job = state.jobs.get(task_id)
        if job is None:
            return error(404, "Task not found")
        job["cancelled"] = True
        return Response(status_code=204)

    @app.get("/files/{task_id}.mp4")
    async def files(task_id: str):
        job = state.jobs.get(task_id)
        if job is None or time.time() - job["created"] - job["duration"] > state.file_ttl_s:
            return error(404, "expired")
        return Response(mp4_bytes(), media_type="video/mp4")

    return app


def start(token: str = "key_runway_test") -> FakeServer:
    state = FakeState(token=token)
    return FakeServer(build(state), state).start()

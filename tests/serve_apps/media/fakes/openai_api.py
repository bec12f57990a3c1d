"""A local server following OpenAI's Images API
(https://platform.openai.com/docs/api-reference/images): generations (JSON), edits and
variations (multipart), ``url`` answers that expire (``file_ttl_s``) or ``b64_json``, and
OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}``. ``n`` images come
back per request: 1..10, dall-e-3 only 1 (400 otherwise, as the API answers).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.serve_apps.media.fakes.common import FakeServer, FakeState, image_size, png_bytes

SIZES = {"256x256", "512x512", "1024x1024", "1792x1024", "1024x1792", "1536x1024",
         "1024x1536"}


def build(state: FakeState) -> FastAPI:
    app = FastAPI()

    def error(status: int, message: str, code: str, param=None, retry_after=None):
        headers = {"retry-after": str(int(retry_after))} if retry_after is not None else None
        kind = "requests" if status == 429 else "invalid_request_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                       "code": code}}, status_code=status, headers=headers)

    def guard(request: Request, key: str):
        state.calls[key] += 1
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return error(401, "Incorrect API key provided", "invalid_api_key")
        fault = state.faults.take(key)
        if fault:
            return error(fault[0], "injected fault", "rate_limit_exceeded"
                         if fault[0] == 429 else "server_error", retry_after=fault[1])
        return None

    def count(params: dict):
        """``(n, None)`` or ``(None, error answer)`` for the request's ``n``."""
        try:
            n = int(params.get("n", 1))
        except (TypeError, ValueError):
            return None, error(400, "n must be an integer", "invalid_type", "n")
        if n < 1:
            return None, error(400, f"{n} is less than the minimum of 1 - 'n'",
                               "integer_below_min_value", "n")
        if n > 10:
            return None, error(400, f"{n} is greater than the maximum of 10 - 'n'",
                               "integer_above_max_value", "n")
        if n > 1 and str(params.get("model", "")).startswith("dall-e-3"):
            return None, error(400, "You must provide n=1 for this model.",
                               "invalid_value", "n")
        return n, None

    def result(key: str, params: dict, data: bytes):
        n, bad = count(params)
        if bad:
            return bad
        state.sent.append((key, params))
        items = []
        for _ in range(n):
            if params.get("response_format", "url") == "b64_json" or str(
                    params.get("model", "")).startswith("gpt-image"):
                item = {"b64_json": base64.b64encode(data).decode()}
            else:
                name = uuid.uuid4().hex
                state.jobs[name] = {"data": data, "created": time.time()}
                item = {"url": f"{app.state.base_url}/files/{name}.png"}
            if params.get("prompt"):
                item["revised_prompt"] = f"{params['prompt']} (revised)"
            items.append(item)
        return {"created": int(time.time()), "data": items}

    def scaled(size: str) -> bytes:
        w, h = (int(v) // 16 for v in size.split("x"))
        return png_bytes(w, h)

    @app.post("/v1/images/generations")
    async def generations(request: Request):
        bad = guard(request, "create")
        if bad:
            return bad
        params = await request.json()
        if not params.get("prompt"):
            return error(400, "prompt is required", "invalid_value", "prompt")
        size = params.get("size", "1024x1024")
        if size not in SIZES:
            return error(400, f"Invalid size {size}", "invalid_value", "size")
        if state.latency_s:
            await asyncio.sleep(state.latency_s)
        return result("generations", params, scaled(size))

    async def multipart(request: Request, need_prompt: bool):
        form = await request.form()
        image = form.get("image")
        if image is None or not hasattr(image, "read"):
            return None, error(400, "image is required", "invalid_value", "image")
        if need_prompt and not form.get("prompt"):
            return None, error(400, "prompt is required", "invalid_value", "prompt")
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        return (params, await image.read()), None

    @app.post("/v1/images/edits")
    async def edits(request: Request):
        bad = guard(request, "create")
        if bad:
            return bad
        got, bad = await multipart(request, True)
        if bad:
            return bad
        params, data = got
        return result("edits", params, png_bytes(*image_size(data), (0, 200, 0)))

    @app.post("/v1/images/variations")
    async def variations(request: Request):
        bad = guard(request, "create")
        if bad:
            return bad
        got, bad = await multipart(request, False)
        if bad:
            return bad
        params, data = got
        return result("variations", params, png_bytes(*image_size(data), (0, 0, 200)))

    @app.get("/files/{name}.png")
    async def files(name: str):
        state.calls["file"] += 1
        fault = state.faults.take("file")
        if fault:
            return error(fault[0], "injected fault", "server_error", retry_after=fault[1])
        item = state.jobs.get(name)
        if item is None or time.time() - item["created"] > state.file_ttl_s:
            return Response("<Error><Code>AuthenticationFailed</Code></Error>",
                            status_code=403, media_type="application/xml")
        return Response(item["data"], media_type="image/png")

    return app


def start(token: str = "sk-openai-test") -> FakeServer:
    state = FakeState(token=token)
    return FakeServer(build(state), state).start()

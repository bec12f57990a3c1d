"""A local server following Stability's REST v2beta
(https://platform.stability.ai/docs/api-reference): multipart requests, JSON answers with
base64 images and ``finish_reason`` (or raw bytes for ``Accept: image/*``), asynchronous
creative upscale polled at ``/v2beta/results/{id}`` (202, then 200), and its error shape
``{"id", "name", "errors"}``.

Prompt markers: ``[filtered]`` answers finish_reason CONTENT_FILTERED; ``[slow]``.
Generate checks ``style_preset`` against the documented enum and ``cfg_scale`` against
1..10 (400 bad_request naming the field, as the API answers) and returns one image.
"""

from __future__ import annotations

import base64
import time
import uuid

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.serve_apps.media.fakes.common import FakeServer, FakeState, image_size, png_bytes

RATIOS = {"21:9": (168, 72), "16:9": (128, 72), "3:2": (96, 64), "5:4": (80, 64),
          "1:1": (64, 64), "4:5": (64, 80), "2:3": (64, 96), "9:16": (72, 128),
          "9:21": (72, 168)}


STYLE_PRESETS = ("3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art",
                 "enhance", "fantasy-art", "isometric", "line-art", "low-poly",
                 "modeling-compound", "neon-punk", "origami", "photographic", "pixel-art",
                 "tile-texture")


def _invalid_generate(form: dict) -> str | None:
    """Stability's 400 message for a bad ``style_preset`` or ``cfg_scale``, else None."""
    preset = form.get("style_preset")
    if preset is not None and preset not in STYLE_PRESETS:
        return f"style_preset: must be one of {', '.join(STYLE_PRESETS)}"
    cfg = form.get("cfg_scale")
    if cfg is not None:
        try:
            value = float(cfg)
        except ValueError:
            return "cfg_scale: must be a number"
        if not 1 <= value <= 10:
            return "cfg_scale: must be between 1 and 10"
    return None


def build(state: FakeState) -> FastAPI:
    app = FastAPI()

    def error(status: int, name: str, errors: list[str], retry_after=None) -> JSONResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
        return JSONResponse({"id": uuid.uuid4().hex, "name": name, "errors": errors},
                            status_code=status, headers=headers)

    def guard(request: Request, key: str) -> JSONResponse | None:
        state.calls[key] += 1
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return error(401, "unauthorized", ["authorization: invalid or missing header"])
        fault = state.faults.take(key)
        if fault:
            name = "rate_limit_exceeded" if fault[0] == 429 else "internal_error"
            return error(fault[0], name, ["injected fault"], fault[1])
        return None

    def answer(request: Request, data: bytes, prompt: str | None) -> Response:
        reason = "CONTENT_FILTERED" if prompt and "[filtered]" in prompt else "SUCCESS"
        if request.headers.get("accept", "").startswith("image/"):
            return Response(data, media_type="image/png",
                            headers={"finish-reason": reason, "seed": "42"})
        return JSONResponse({"image": base64.b64encode(data).decode(),
                             "finish_reason": reason, "seed": 42})

    @app.post("/v2beta/stable-image/generate/{model}")
    async def generate(model: str, request: Request):
        bad = guard(request, "create")
        if bad:
            return bad
        if model not in ("core", "ultra", "sd3"):
            return error(404, "not_found", [f"unknown endpoint {model}"])
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        prompt = fields.get("prompt")
        if not prompt:
            return error(400, "bad_request", ["prompt: cannot be empty"])
        ratio = fields.get("aspect_ratio", "1:1")
        if ratio not in RATIOS:
            return error(400, "bad_request", [f"aspect_ratio: must be one of {list(RATIOS)}"])
        invalid = _invalid_generate(fields)
        if invalid:
            return error(400, "bad_request", [invalid])
        state.jobs[f"generate-{uuid.uuid4().hex}"] = fields
        state.sent.append((f"generate/{model}", fields))
        return answer(request, png_bytes(*RATIOS[ratio]), prompt)

    async def _image(request: Request) -> tuple[bytes | None, dict]:
        form = await request.form()
        upload = form.get("image")
        data = await upload.read() if upload is not None and hasattr(upload, "read") else None
        return data, {k: v for k, v in form.items() if isinstance(v, str)}

    @app.post("/v2beta/stable-image/upscale/{mode}")
    async def upscale(mode: str, request: Request):
        bad = guard(request, "create")
        if bad:
            return bad
        data, form = await _image(request)
        if data is None:
            return error(400, "bad_request", ["image: required"])
        w, h = image_size(data)
        factor = 4 if mode == "fast" else 2
        out = png_bytes(w * factor, h * factor)
        if mode == "creative":
            job_id = uuid.uuid4().hex
            state.jobs[job_id] = {"ready": time.time() + state.duration(form.get("prompt")),
                                  "image": out, "prompt": form.get("prompt")}
            return JSONResponse({"id": job_id})
        if mode not in ("fast", "conservative"):
            return error(404, "not_found", [f"unknown upscaler {mode}"])
        return answer(request, out, form.get("prompt"))

    @app.get("/v2beta/results/{job_id}")
    async def results(job_id: str, request: Request):
        bad = guard(request, "get")
        if bad:
            return bad
        job = state.jobs.get(job_id)
        if job is None:
            return error(404, "not_found", [f"no generation {job_id}"])
        if time.time() < job["ready"]:
            return JSONResponse({"id": job_id, "status": "in-progress"}, status_code=202)
        return answer(request, job["image"], job["prompt"])

    @app.post("/v2beta/stable-image/edit/{mode}")
    async def edit(mode: str, request: Request):
        bad = guard(request, "create")
        if bad:
            return bad
        data, form = await _image(request)
        if data is None or not form.get("prompt"):
            return error(400, "bad_request", ["image and prompt are required"])
        if mode == "search-and-replace" and not form.get("search_prompt"):
            return error(400, "bad_request", ["search_prompt: required"])
        if mode not in ("inpaint", "search-and-replace"):
            return error(404, "not_found", [f"unknown edit {mode}"])
        state.sent.append((f"edit/{mode}", form))
        return answer(request, png_bytes(*image_size(data), (10, 120, 200)), form["prompt"])

    return app


def start(token: str = "sk-stability-test") -> FakeServer:
    state = FakeState(token=token)
    return FakeServer(build(state), state).start()

"""The LLM app's deployment: OpenAI routes parsed with vLLM's own protocol, models resolved
in the catalog, run on the replica's own engine (:class:`serve_apps.llm.server.LLMServer`).

Routes (under the app's route prefix, default ``/openai``):
``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /v1/models/{model}``, and seed 002's ``POST /v1/generate`` and
``POST /v1/generate/batch`` (:mod:`serve_apps.llm.protocol`). Errors use OpenAI's shape through
vLLM's exception handlers (``init_exception_handler``): bad parameters and malformed
JSON are 400, an unknown model or adapter is 404, a missing or unknown API key is 401
(the gateway's keys: :mod:`serve_apps.auth`), a job token is 403, a key over one of its
limits is 429 with ``Retry-After`` (:mod:`serve_apps.llm.limits`).

The request path does not call the catalog: keys (:mod:`serve_apps.auth`) and
``model`` lookups are cached for :data:`serve_apps.cache.CACHE_TTL_S` seconds and served
stale while the catalog actor restarts. A ``model`` not in the cache is looked up at
once, so an adapter registered a moment ago is servable on its first request; a
deleted adapter stops resolving within the TTL.

Chat and completion responses carry ``carbon_emissions_g`` (grams CO2eq of the
request's share of the replica's measured energy) as a top-level field, and in the
final usage chunk of a stream; OpenAI clients ignore fields they do not know.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.serve.engine.protocol import ErrorResponse
from vllm.entrypoints.serve.exception_handling.error_response import create_error_response
from vllm.entrypoints.serve.exception_handling.handlers.http import http_exception_handler
from vllm.entrypoints.serve.exception_handling.handlers.validation import (
    validation_exception_handler,
)

from catalog.errors import PermissionDenied, Unauthenticated
from catalog.model_names import Target, UnknownModel
from catalog.port import AsyncCatalogPort
from serve_apps.auth import Principal, current_principal
from serve_apps.cache import RefreshingCache
from serve_apps.llm.config import LLMAppConfig
from serve_apps.llm.limits import ClusterLimiter, LimitExceeded
from serve_apps.llm.models import list_adapters, resolve
from serve_apps.llm.protocol import (
    BatchInferenceRequest,
    BatchInferenceResponse,
    GenerateRequest,
    GenerateResponse,
)
from serve_apps.llm.server import EngineClass, LLMServer
from serve_apps.llm.usage import Caller, Tally

log = logging.getLogger(__name__)

#: Response header naming the engine replica that answered (Serve's replica id, unique
#: per replica): which replica served a request, for operators following an upgrade or
#: a scale-up, and for the tests that check every replica serves a new adapter.
REPLICA_HEADER = "x-garden-replica"


def replica_headers() -> dict[str, str]:
    """``{REPLICA_HEADER: <Serve's replica id>}`` inside a Serve replica, ``{}`` outside."""
    from ray.serve.exceptions import RayServeException

    try:
        return {REPLICA_HEADER: serve.get_replica_context().replica_id.unique_id}
    except RayServeException:
        return {}


def _error(message: str, status: HTTPStatus, err_type: str, param: str | None = None,
           headers: dict[str, str] | None = None):
    err = create_error_response(message, err_type=err_type, status_code=status, param=param)
    return JSONResponse(status_code=err.error.code, content=err.model_dump(), headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error("internal error", HTTPStatus.INTERNAL_SERVER_ERROR, "InternalServerError")


async def _authorize(request: Request) -> None:
    """Every OpenAI route needs an API key, like every gateway route (401 otherwise); a
    job token may call none of them (403, :func:`serve_apps.auth.check_job_scope`)."""
    try:
        await current_principal(request)
    except Unauthenticated as exc:
        raise StarletteHTTPException(401, exc.message) from exc
    except PermissionDenied as exc:
        raise StarletteHTTPException(403, exc.message) from exc


async def _chained(first, rest):
    yield first
    async for item in rest:
        yield item


def build_fastapi() -> FastAPI:
    """The FastAPI app of :class:`LLMIngress` with vLLM's OpenAI error handlers.

    vLLM's handlers turn request validation errors (bad parameters, malformed JSON)
    into 400 and HTTP errors into OpenAI's shape; anything else is logged and is 500.
    """
    app = FastAPI(title="Model Garden LLM (OpenAI-compatible)",
                  dependencies=[Depends(_authorize)])
    app.state.args = Namespace(log_error_stack=False)  # read by vLLM's handlers
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(Exception, _unexpected)
    return app


fastapi_app = build_fastapi()

#: The error answers of the seed routes, for the OpenAPI document (OpenAI's error shape).
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in (
        (400, "Bad parameters (`param` names the field)"), (401, "No or unknown API key"),
        (403, "A job token (it may only read its own job)"), (404, "Unknown model_id"),
        (429, "Over the key's limits (Retry-After)"))
}


@serve.ingress(fastapi_app)
class LLMIngress(LLMServer):
    """The LLM app's one deployment: parses requests, resolves ``model`` through the
    catalog, admits the caller under its key's limits and runs the request on this
    replica's engine (the :class:`LLMServer` methods it inherits).

    Args:
        config: the application config (``config.model`` is the base model).
        engine_cls: vLLM engine class (see :class:`LLMServer`).
        catalog: the catalog port (default: the cluster's actor).
    """

    async def __init__(  # type: ignore[misc]  # Serve awaits an async __init__
        self, config: LLMAppConfig, engine_cls: EngineClass | None = None,
        catalog: AsyncCatalogPort | None = None,
    ):
        await super().__init__(config, engine_cls, catalog)
        self._targets: RefreshingCache[str, Target] = RefreshingCache()
        self.limiter = ClusterLimiter()
        await self.limiter.start()
        self._headers = replica_headers()

    async def _target(self, model: str | None) -> Target:
        return await self._targets.get(
            model or "", lambda: resolve(self.catalog, self.base, model))

    async def _call(self, method: str, request, raw: Request, model: str | None = None,
                    model_param: str = "model"):
        """Resolve ``model`` (default ``request.model``), admit the caller under its key's
        limits, run the engine method ``method`` on ``request``; SSE stream, JSON body, or
        OpenAI error response (an unknown model: 404 naming ``model_param``).

        A non-streamed answer's generator is run to its end before the answer is sent
        (its usage record is handed over there); a stream's ends with the response, or
        is closed when the client goes away (vLLM aborts the request).
        """
        try:
            target = await self._target(model if model is not None else request.model)
        except UnknownModel as exc:
            return _error(str(exc), HTTPStatus.NOT_FOUND, "NotFoundError", model_param)
        principal: Principal = await current_principal(raw)
        try:
            await self.limiter.admit(principal.key)
        except LimitExceeded as exc:
            return _error(exc.message, HTTPStatus.TOO_MANY_REQUESTS, "RateLimitError",
                          headers={"Retry-After": str(exc.retry_after_s), **self._headers})
        caller = Caller(principal.user_id, principal.key_id)
        gen = getattr(self, method)(request, caller, target.adapter.id if target.adapter
                                    else None)
        try:
            first = await gen.__anext__()
        except StopAsyncIteration:
            return _error("engine returned nothing", HTTPStatus.INTERNAL_SERVER_ERROR,
                          "InternalServerError")
        if not isinstance(first, str):  # one answer: finish the generator (usage record)
            async for _ in gen:
                pass
        if isinstance(first, ErrorResponse):
            return JSONResponse(status_code=first.error.code, content=first.model_dump(),
                                headers=self._headers)
        if isinstance(first, str):
            async def stream():
                try:
                    async for chunk in _chained(first, gen):
                        tally = chunk if isinstance(chunk, Tally) else getattr(
                            chunk, "tally", None)
                        if tally is not None:
                            self.limiter.count_tokens(
                                principal.key, tally.prompt_tokens + tally.completion_tokens)
                        if isinstance(chunk, str):
                            yield chunk
                finally:  # a client gone mid-stream: vLLM aborts, the account is kept
                    await gen.aclose()

            return StreamingResponse(stream(), media_type="text/event-stream",
                                     headers=self._headers)
        # one item: the response, with its usage and carbon_emissions_g (a batch: its
        # results' usage)
        body = first.model_dump(mode="json")
        usages = [r["usage"] for r in body.get("results") or []] or [body.get("usage") or {}]
        self.limiter.count_tokens(principal.key, sum(
            (u.get("prompt_tokens") or 0) + (u.get("completion_tokens") or 0) for u in usages))
        return JSONResponse(content=body, headers=self._headers)

    @fastapi_app.post("/v1/chat/completions")
    async def chat(self, request: ChatCompletionRequest, raw: Request):
        """OpenAI chat completions (https://platform.openai.com/docs/api-reference/chat)."""
        if not request.messages:
            return _error("messages must hold at least one message", HTTPStatus.BAD_REQUEST,
                          "BadRequestError", "messages")
        return await self._call("create_chat_completion", request, raw)

    @fastapi_app.post("/v1/completions")
    async def completions(self, request: CompletionRequest, raw: Request):
        """OpenAI completions (https://platform.openai.com/docs/api-reference/completions)."""
        return await self._call("create_completion", request, raw)

    @fastapi_app.post(
        "/v1/generate", response_model=GenerateResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description":
                         "GenerateResponse; with `stream`: server-sent events, one "
                         "GenerateChunk per piece of text, then the GenerateResponse, "
                         "then `[DONE]`"},
                   **_ERRORS},
    )
    async def generate(self, request: GenerateRequest, raw: Request):
        """Seed 002's generate route: GenerateRequest -> GenerateResponse (text, usage,
        latency, grams of CO2), or server-sent events with ``stream``. ``model_id`` takes
        what OpenAI's ``model`` takes (base, adapter id, name or ``base:adapter``)."""
        return await self._call("create_generate", request, raw, request.model_id,
                                "model_id")

    @fastapi_app.post("/v1/generate/batch", response_model=BatchInferenceResponse,
                      responses=_ERRORS)
    async def generate_batch(self, request: BatchInferenceRequest, raw: Request):
        """Seed 002's batch inference: up to 100 prompts run concurrently in one engine
        replica (vLLM batches them) -> one result per prompt, in order. A prompt the
        engine refuses gets its ``error``; the others still answer. The key's rate limit
        counts the call once, its token limits count every prompt's tokens; each prompt
        is one usage record."""
        return await self._call("create_generate_batch", request, raw, request.model_id,
                                "model_id")

    def _card(self, target: Target):
        from vllm.entrypoints.serve.engine.protocol import ModelCard

        if target.adapter is None:
            return ModelCard(id=self.base.name, root=self.base.path, owned_by="model-garden",
                             max_model_len=self.config.engine_args.max_model_len)
        return ModelCard(id=target.served_name, root=target.adapter.id,
                         parent=self.base.name, owned_by="model-garden")

    @fastapi_app.get("/v1/models/{model:path}")
    async def model(self, model: str) -> Response:
        """One model (OpenAI ``models.retrieve``): the base or one of its adapters, by any
        name ``model`` accepts; 404 for anything else."""
        try:
            target = await self._target(model)
        except UnknownModel as exc:
            return _error(str(exc), HTTPStatus.NOT_FOUND, "NotFoundError", "model")
        return JSONResponse(content=self._card(target).model_dump(mode="json"))

    @fastapi_app.get("/v1/models")
    async def models(self):
        """The base model and every adapter of it in the catalog (OpenAI model list)."""
        from vllm.entrypoints.serve.engine.protocol import ModelList

        cards = [self._card(Target(self.base))]
        for adapter in await list_adapters(self.catalog, self.base):
            cards.append(self._card(Target(self.base, adapter)))
        return JSONResponse(content=ModelList(data=cards).model_dump(mode="json"))

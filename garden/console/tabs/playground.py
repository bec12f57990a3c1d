"""Playground: one prompt sent to a base model and to one of its adapters side by side,
each answer streamed, with its tokens, latency and grams of CO2 (the LLM app's OpenAI
``/v1/chat/completions`` through the ``openai`` client, as any user would call it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from garden.console.common import ConsoleConfig, api, choices, readable_models, shows_errors


def answer_stats(usage: Any, grams_co2: float | None, first_s: float | None,
                 total_s: float) -> str:
    """One line: completion and prompt tokens, time to first token and in all, grams
    CO2eq (the response's ``carbon_emissions_g``)."""
    tokens = (f"{usage.completion_tokens} tokens out, {usage.prompt_tokens} in"
              if usage is not None else "tokens: not reported")
    first = f"first token {first_s * 1000:.0f} ms · " if first_s is not None else ""
    co2 = f"{grams_co2:.3g} g CO2eq" if grams_co2 is not None else "CO2: not reported"
    return f"{tokens} · {first}{total_s:.2f} s · {co2}"


def stream_answer(config: ConsoleConfig, key: str | None, model: str, prompt: str,
                  max_tokens: int, temperature: float) -> Iterator[tuple[str, str]]:
    """Yield ``(text so far, stats)`` while ``model`` streams its answer to ``prompt``;
    the last item carries the usage and emissions of the final usage chunk."""
    if not prompt.strip():
        raise gr.Error("Write a prompt.")
    with api(config, key) as client:
        oa = client.openai(timeout=config.timeout_s * 5)
        start, first, text = time.monotonic(), None, ""
        usage, grams_co2 = None, None
        try:
            stream = oa.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}],
                max_tokens=int(max_tokens), temperature=float(temperature), stream=True,
                stream_options={"include_usage": True})
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                    grams_co2 = (chunk.model_extra or {}).get("carbon_emissions_g")
                for choice in chunk.choices:
                    if choice.delta.content:
                        first = first if first is not None else time.monotonic() - start
                        text += choice.delta.content
                        yield text, "streaming…"
        except Exception as exc:  # the openai client's errors carry the server's message
            raise gr.Error(f"{model}: {exc}") from exc
        finally:
            oa.close()
        yield text, answer_stats(usage, grams_co2, first, time.monotonic() - start)


def render(config: ConsoleConfig, key: gr.State, signed_in: Any, tab: gr.Tab) -> None:
    with gr.Row():
        adapter = gr.Dropdown(label="Adapter", choices=[], elem_id="play-adapter", scale=3)
        refresh = gr.Button("Refresh", size="sm", scale=0)
        base = gr.Textbox(label="Base model", interactive=False, elem_id="play-base", scale=2)
    prompt = gr.Textbox(label="Prompt", lines=3, elem_id="play-prompt")
    with gr.Row():
        max_tokens = gr.Slider(1, 1024, value=64, step=1, label="max_tokens")
        temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.1,
                                label="temperature (0: greedy)")
        send = gr.Button("Send to both", variant="primary", elem_id="play-send")
    with gr.Row():
        with gr.Column():
            gr.Markdown("#### Base model")
            base_out = gr.Textbox(label="Answer", lines=8, elem_id="play-base-answer")
            base_stats = gr.Markdown(elem_id="play-base-stats")
        with gr.Column():
            gr.Markdown("#### Adapter")
            lora_out = gr.Textbox(label="Answer", lines=8, elem_id="play-adapter-answer")
            lora_stats = gr.Markdown(elem_id="play-adapter-stats")
    bases = gr.State({})  # adapter id -> its base model's name

    @shows_errors
    def listing(key_value: str | None, current: str | None = None) -> tuple[Any, ...]:
        with api(config, key_value) as client:
            seen = {m.id: m for m in readable_models(client, kind="adapter")}
            names = {b: client.models.get(b).name
                     for b in {m.base_model_id for m in seen.values() if m.base_model_id}}
        mapping = {m.id: names.get(m.base_model_id or "", "") for m in seen.values()}
        first = current if current in seen else next(iter(seen), None)
        return (gr.update(choices=choices(list(seen.values()),
                                          lambda m: f"{m.name} v{m.version}"), value=first),
                mapping, mapping.get(first or "", ""))

    def ask(target: str):
        @shows_errors
        def run(key_value: str | None, adapter_id: str | None, base_name: str, text: str,
                tokens: float, temp: float) -> Iterator[tuple[str, str]]:
            model = adapter_id if target == "adapter" else base_name
            if not model:
                raise gr.Error("Choose an adapter (its base model is asked beside it).")
            yield from stream_answer(config, key_value, model, text, int(tokens), temp)
        return run

    signed_in.then(listing, key, [adapter, bases, base])
    tab.select(listing, [key, adapter], [adapter, bases, base])
    refresh.click(listing, [key, adapter], [adapter, bases, base])
    adapter.change(lambda m, a: m.get(a or "", ""), [bases, adapter], base)
    inputs = [key, adapter, base, prompt, max_tokens, temperature]
    send.click(ask("base"), inputs, [base_out, base_stats])
    send.click(ask("adapter"), inputs, [lora_out, lora_stats])

"""Models: base models and adapters with their lineage (dataset → job → adapter → the
requests it served) drawn as a graph, metrics, the training carbon and the serving totals
on one page, and publish/unpublish (``GET /v1/models/{id}/lineage``)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from catalog.schemas import Model, ModelLineage
from garden.console.common import (
    ConsoleConfig,
    api,
    choices,
    grams,
    readable_models,
    shows_errors,
)

#: Mermaid node shapes by lineage node kind (https://mermaid.js.org/syntax/flowchart.html).
_SHAPES = {"dataset": ('[("', '")]'), "training_job": ('[["', '"]]'),
           "model": ('("', '")'), "requests": ('{{"', '"}}')}


def label(m: Model) -> str:
    return f"{m.name} v{m.version} ({m.kind})"


def lineage_mermaid(lineage: ModelLineage) -> str:
    """The lineage as a Mermaid flowchart in a Markdown code block (Gradio's Markdown
    draws it). Node ids are positional (``n0``...), labels are quoted with ``"``
    escaped, and the model itself is highlighted."""
    ids = {node.id: f"n{i}" for i, node in enumerate(lineage.nodes)}
    lines = ["```mermaid", "flowchart LR"]
    for node in lineage.nodes:
        left, right = _SHAPES.get(node.kind, ('["', '"]'))
        text = node.label.replace('"', "#quot;")
        lines.append(f"  {ids[node.id]}{left}{text}{right}")
    for edge in lineage.edges:
        if edge.source in ids and edge.target in ids:
            lines.append(f"  {ids[edge.source]} -->|{edge.label}| {ids[edge.target]}")
    if lineage.model.id in ids:
        lines.append(f"  style {ids[lineage.model.id]} stroke-width:3px")
    lines.append("```")
    return "\n".join(lines)


def model_text(lineage: ModelLineage) -> str:
    """Markdown: the model, its training metrics and carbon, its serving totals and its
    newest evaluation's scores, base against adapter."""
    m, job, serving = lineage.model, lineage.training_job, lineage.serving
    lines = [f"### {m.name} v{m.version}",
             f"`{m.id}` · {m.kind} · {'published' if m.published else 'private'}"
             + (f" · base {lineage.base_model.name}" if lineage.base_model else "")]
    if job is not None:
        before = f"{job.eval_loss_before:.4f}" if job.eval_loss_before is not None else "?"
        after = f"{job.eval_loss_after:.4f}" if job.eval_loss_after is not None else "?"
        lines += [f"- trained by job `{job.id}` ({job.status}), eval loss {before} → {after}",
                  f"- training carbon: {job.energy_kwh or 0:.6f} kWh, "
                  f"{grams(job.emissions_kg)} CO2eq"]
    if lineage.dataset is not None:
        lines.append(f"- trained on {lineage.dataset.name} v{lineage.dataset.version} "
                     f"({lineage.dataset.num_rows} rows)")
    whose = "all callers" if serving.scope == "all" else "your requests"
    lines.append(
        f"- serving ({whose}): {serving.requests} requests, "
        f"{serving.prompt_tokens + serving.completion_tokens} tokens "
        f"({serving.prompt_tokens} prompt, {serving.completion_tokens} completion), "
        f"${serving.cost_usd:.4f}, {serving.energy_kwh:.6f} kWh, "
        f"{grams(serving.emissions_kg)} CO2eq")
    if lineage.adapters:
        lines.append(f"- adapters: {', '.join(a.name for a in lineage.adapters)}")
    if m.evaluation is not None:
        lines += ["", f"**evaluation** `{m.evaluation.id}` on {m.evaluation.n} prompts, "
                  "base → adapter:", "", "| metric | base | adapter |", "| --- | --- | --- |"]
        lines += [f"| {x.metric} | {x.base:.3f} | {x.adapter:.3f} |" for x in m.evaluation.scores]
    return "\n".join(lines)


def render(config: ConsoleConfig, key: gr.State, signed_in: Any, tab: gr.Tab) -> None:
    with gr.Row():
        picked = gr.Dropdown(label="Model", choices=[], elem_id="model-pick", scale=3)
        refresh = gr.Button("Refresh", size="sm", scale=0)
        publish = gr.Button("Publish", size="sm", scale=0, elem_id="model-publish")
        unpublish = gr.Button("Unpublish", size="sm", scale=0, elem_id="model-unpublish")
    with gr.Row():
        details = gr.Markdown(elem_id="model-details")
        graph = gr.Markdown(elem_id="model-lineage")

    @shows_errors
    def listing(key_value: str | None, selected: str | None = None) -> Any:
        with api(config, key_value) as client:
            found = readable_models(client)
        ordered = sorted(found, key=lambda m: (m.kind != "adapter", m.name))
        ids = [m.id for m in ordered]
        value = selected if selected in ids else (ids[0] if ids else None)
        return gr.update(choices=choices(ordered, label), value=value)

    @shows_errors
    def show(key_value: str | None, model_id: str | None) -> tuple[str, str]:
        if not model_id:
            return "", ""
        with api(config, key_value) as client:
            lineage = client.models.lineage(model_id)
        return model_text(lineage), lineage_mermaid(lineage)

    def publisher(flag: bool):
        @shows_errors
        def run(key_value: str | None, model_id: str | None) -> None:
            if not model_id:
                raise gr.Error("Choose a model.")
            with api(config, key_value) as client:
                m = client.models.publish(model_id, published=flag)
            gr.Info(f"{m.name} is now {'published' if m.published else 'private'}")
        return run

    signed_in.then(listing, key, picked)
    tab.select(listing, [key, picked], picked)
    refresh.click(listing, [key, picked], picked)
    picked.change(show, [key, picked], [details, graph])
    for button, flag in ((publish, True), (unpublish, False)):
        button.click(publisher(flag), [key, picked]).success(
            show, [key, picked], [details, graph])

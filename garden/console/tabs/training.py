"""Training: a form for a new LoRA job (base model, dataset, method and the main
hyperparameters with the schema's bounds), the jobs with status and progress, and a job's
page: live loss curve (train and eval loss against step), learning rate, tokens/s,
events, logs, checkpoints and cancel (``/v1/training/jobs``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import pandas as pd
from pydantic import BaseModel

from catalog.schemas import (
    Hyperparameters,
    LoraConfig,
    MetricPoint,
    ScalingSpec,
    TrainingJob,
    TrainingMethod,
)
from garden.console.common import (
    ConsoleConfig,
    api,
    bounds,
    choices,
    readable_models,
    shows_errors,
    when,
)

#: Job states after which a job's page stops refreshing.
DONE = ("completed", "failed", "cancelled")


def loss_frame(points: list[MetricPoint]) -> pd.DataFrame:
    """Long-format losses for a line chart: one row per (step, series) with ``series``
    ``train loss`` or ``eval loss``; points without a loss are left out."""
    rows = [{"step": p.step, "loss": value, "series": series}
            for p in points
            for series, value in (("train loss", p.train_loss), ("eval loss", p.eval_loss))
            if value is not None]
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def series_frame(points: list[MetricPoint], field: str) -> pd.DataFrame:
    """``step`` and one metric (``learning_rate``, ``tokens_per_second``) per point."""
    rows = [{"step": p.step, field: getattr(p, field)} for p in points
            if getattr(p, field) is not None]
    return pd.DataFrame(rows, columns=["step", field])


def job_text(job: TrainingJob, points: list[MetricPoint]) -> str:
    """Markdown of a job's status, progress, losses, throughput and footprint."""
    losses = loss_frame(points)
    last = points[-1] if points else None
    lines = [f"**{job.name}** · `{job.id}` · **{job.status}** · Ray job `{job.ray_job_id}`",
             f"- progress {job.progress or 0:.0%}: step {job.current_step or 0} of "
             f"{job.total_steps or '?'} · {len(losses)} loss points"]
    if last is not None and last.tokens_per_second:
        lines.append(f"- {last.tokens_per_second:.0f} tokens/s at step {last.step}")
    if job.eval_loss_before is not None:
        after = f"{job.eval_loss_after:.4f}" if job.eval_loss_after is not None else "…"
        lines.append(f"- eval loss before {job.eval_loss_before:.4f} → after {after}")
    if job.emissions_kg is not None:
        lines.append(f"- training: {job.energy_kwh or 0:.6f} kWh, "
                     f"{job.emissions_kg * 1000:.3g} g CO2eq")
    if job.output_model_id:
        lines.append(f"- adapter `{job.output_model_id}` (see Models)")
    if job.error_message:
        lines.append(f"- error: {job.error_message}")
    return "\n".join(lines)


def jobs_table(jobs: Sequence[TrainingJob]) -> list[list[Any]]:
    """``[id, name, status, progress, step, created]`` per job."""
    return [[j.id, j.name, j.status, f"{(j.progress or 0):.0%}", j.current_step or 0,
             when(j.created_at)] for j in jobs]


def _number(model: type[BaseModel], field: str, label: str, **kw: Any) -> gr.Number:
    """A number input for a schema field: its default, description and bounds."""
    spec, limits = model.model_fields[field], bounds(model, field)
    return gr.Number(value=spec.default, label=label, info=spec.description,
                     minimum=limits.get("minimum"), maximum=limits.get("maximum"),
                     elem_id=f"train-{field}", **kw)


def render(config: ConsoleConfig, key: gr.State, signed_in: Any, tab: gr.Tab) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("### New job")
            name = gr.Textbox(label="Name", value="console-lora", elem_id="train-name")
            base = gr.Dropdown(label="Base model", choices=[], elem_id="train-base")
            data = gr.Dropdown(label="Dataset", choices=[], elem_id="train-dataset")
            method = gr.Radio([m.value for m in TrainingMethod], value="sft",
                              label="Method", elem_id="train-method")
            lr = _number(Hyperparameters, "learning_rate", "learning_rate")
            epochs = _number(Hyperparameters, "num_train_epochs", "num_train_epochs")
            max_steps = gr.Number(value=0, label="max_steps (0: num_train_epochs decides)",
                                  minimum=0, precision=0, elem_id="train-max_steps")
            batch = _number(Hyperparameters, "per_device_train_batch_size",
                            "per_device_train_batch_size", precision=0)
            accum = _number(Hyperparameters, "gradient_accumulation_steps",
                            "gradient_accumulation_steps", precision=0)
            seq = _number(Hyperparameters, "max_seq_length", "max_seq_length", precision=0)
            logging = _number(Hyperparameters, "logging_steps", "logging_steps", precision=0)
            r = _number(LoraConfig, "r", "LoRA r", precision=0)
            alpha = _number(LoraConfig, "lora_alpha", "lora_alpha", precision=0)
            workers = _number(ScalingSpec, "num_workers", "Ray Train workers", precision=0)
            submit = gr.Button("Start training", variant="primary", elem_id="train-submit")
        with gr.Column(scale=2):
            jobs = gr.Dataframe(headers=["id", "name", "status", "progress", "step",
                                         "created"], label="Jobs", interactive=False,
                                elem_id="train-jobs")
            with gr.Row():
                picked = gr.Dropdown(label="Job", choices=[], elem_id="train-job")
                refresh = gr.Button("Refresh", size="sm")
                cancel = gr.Button("Cancel job", variant="stop", size="sm",
                                   elem_id="train-cancel")
            summary = gr.Markdown(elem_id="train-summary")
            loss = gr.LinePlot(x="step", y="loss", color="series", title="Loss",
                               color_map={"train loss": "#f97316", "eval loss": "#2563eb"},
                               elem_id="train-loss", height=320)
            with gr.Row():
                lrate = gr.LinePlot(x="step", y="learning_rate", title="Learning rate",
                                    height=200, elem_id="train-lr")
                speed = gr.LinePlot(x="step", y="tokens_per_second", title="Tokens/s",
                                    height=200, elem_id="train-tps")
            with gr.Accordion("Events, checkpoints and logs", open=False):
                events = gr.Dataframe(headers=["#", "level", "message", "at"],
                                      label="Events", interactive=False, wrap=True,
                                      elem_id="train-events")
                ckpts = gr.Dataframe(headers=["step", "eval loss", "train loss", "path"],
                                     label="Checkpoints", interactive=False)
                logs_button = gr.Button("Load logs", size="sm")
                logs = gr.Code(label="Logs (Ray job driver)", lines=12, interactive=False)
    timer = gr.Timer(config.refresh_s, active=False)

    @shows_errors
    def options(key_value: str | None, selected: str | None = None,
                base_id: str | None = None, dataset_id: str | None = None) -> tuple[Any, ...]:
        """The form's choices and the jobs; current choices are kept while they exist."""
        with api(config, key_value) as client:
            seen = {m.id: m for m in readable_models(client, kind="base")}
            sets = client.datasets.list(page_size=100).items
            job_list = client.training.list(page_size=50).items
        ids = [j.id for j in job_list]
        set_ids = [d.id for d in sets]
        return (gr.update(choices=choices(list(seen.values()),
                                          lambda m: f"{m.name} v{m.version}"),
                          value=base_id if base_id in seen else next(iter(seen), None)),
                gr.update(choices=choices(sets, lambda d: f"{d.name} v{d.version}"),
                          value=dataset_id if dataset_id in set_ids
                          else (set_ids[0] if set_ids else None)),
                jobs_table(job_list),
                gr.update(choices=choices(job_list, lambda j: f"{j.name} ({j.status})"),
                          value=selected if selected in ids else (ids[0] if ids else None)))

    @shows_errors
    def page(key_value: str | None, job_id: str | None) -> tuple[Any, ...]:
        """The job's page; also the jobs table, so its status column follows."""
        if not job_id:
            return ("", loss_frame([]), series_frame([], "learning_rate"),
                    series_frame([], "tokens_per_second"), [], [], gr.Timer(active=False),
                    gr.skip())
        with api(config, key_value) as client:
            job = client.training.get(job_id)
            points = client.training.metrics(job_id)
            evs = client.training.events(job_id, limit=200)["items"]
            cks = client.training.checkpoints(job_id)
            job_list = client.training.list(page_size=50).items
        return (job_text(job, points), loss_frame(points),
                series_frame(points, "learning_rate"),
                series_frame(points, "tokens_per_second"),
                [[e["seq"], e["level"], e["message"], e["created_at"][:19]] for e in evs],
                [[c.step, c.eval_loss, c.train_loss, c.path] for c in cks],
                gr.Timer(active=job.status not in DONE), jobs_table(job_list))

    @shows_errors
    def start(key_value: str | None, *values: Any) -> tuple[Any, ...]:
        (job_name, base_id, dataset_id, meth, lr_v, ep, steps, bs, ga, sl, log_v, r_v, a_v,
         nw) = values
        if not base_id or not dataset_id:
            raise gr.Error("Choose a base model and a dataset.")
        hyper = {"learning_rate": lr_v, "num_train_epochs": ep,
                 "per_device_train_batch_size": bs, "gradient_accumulation_steps": ga,
                 "max_seq_length": sl, "logging_steps": log_v}
        if steps:
            hyper["max_steps"] = int(steps)
        with api(config, key_value) as client:
            job = client.training.create(
                name=job_name, base_model_id=base_id, dataset_id=dataset_id, method=meth,
                hyperparameters=hyper, lora={"r": r_v, "lora_alpha": a_v},
                scaling={"num_workers": nw})
        gr.Info(f"Job {job.id} submitted as Ray job {job.ray_job_id}")
        return options(key_value, job.id, base_id, dataset_id)

    @shows_errors
    def stop(key_value: str | None, job_id: str | None) -> None:
        if not job_id:
            raise gr.Error("Choose a job.")
        with api(config, key_value) as client:
            job = client.training.cancel(job_id)
        gr.Info(f"Job {job.id}: {job.status}")

    @shows_errors
    def driver_logs(key_value: str | None, job_id: str | None) -> str:
        if not job_id:
            return ""
        with api(config, key_value) as client:
            return client.training.logs(job_id)[-20000:]

    page_out = [summary, loss, lrate, speed, events, ckpts, timer, jobs]
    form = [name, base, data, method, lr, epochs, max_steps, batch, accum, seq, logging, r,
            alpha, workers]
    signed_in.then(options, key, [base, data, jobs, picked])
    tab.select(options, [key, picked, base, data], [base, data, jobs, picked])
    refresh.click(options, [key, picked, base, data], [base, data, jobs, picked])
    submit.click(start, [key, *form], [base, data, jobs, picked])
    picked.change(page, [key, picked], page_out)
    timer.tick(page, [key, picked], page_out)
    cancel.click(stop, [key, picked]).success(page, [key, picked], page_out)
    logs_button.click(driver_logs, [key, picked], logs)

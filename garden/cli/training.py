"""Training: ``garden train`` (create a LoRA job and follow it) and the ``garden jobs``
group (``list | show | logs | cancel | watch | token``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from garden.cli.options import EventsOpt
from garden.cli.output import (
    add_cancel,
    api,
    api_errors,
    console,
    print_events,
    print_table,
    score_rows,
)

jobs_app = typer.Typer(help="List, show, follow and cancel training jobs.",
                       no_args_is_help=True)


def train(
    ctx: typer.Context,
    base_model: str = typer.Option(..., help="Base model id or name."),
    dataset: str = typer.Option(..., help="Dataset id."),
    name: str = typer.Option("lora", help="Job name."),
    method: str = typer.Option("sft", help="sft (chats) or dpo (preference pairs)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many optimizer steps."),
    epochs: float = typer.Option(1.0, help="num_train_epochs when --max-steps is not set."),
    learning_rate: float = typer.Option(2e-4),
    beta: float = typer.Option(0.1, help="DPO's beta (dpo only)."),
    lora_r: int = typer.Option(16, help="LoRA rank."),
    num_workers: int = typer.Option(1, help="Ray Train workers."),
    use_gpu: bool = typer.Option(False),
    wait: bool = typer.Option(True, help="Follow the job with a live progress bar."),
    timeout_s: float = typer.Option(24 * 3600, help="Longest wait, seconds."),
) -> None:
    """Create a LoRA training job (SFT or DPO) and follow it on a live progress bar."""
    client = api(ctx)
    with api_errors():
        base = client.models.get(base_model)
        job = client.training.create(
            name=name, base_model_id=base.id, dataset_id=dataset, method=method,
            hyperparameters={"max_steps": max_steps, "num_train_epochs": epochs,
                             "learning_rate": learning_rate, "beta": beta},
            lora={"r": lora_r}, scaling={"num_workers": num_workers, "use_gpu": use_gpu},
        )
        console.print(f"job {job.id} {job.status} (ray job {job.ray_job_id})")
        if not wait:
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("step"),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            # the job's total_steps is known once its trainer has sized the run
            task = bar.add_task(job.status, total=job.total_steps or max_steps or None)

            def show(j, points) -> None:
                last = next((p for p in reversed(points) if p.train_loss is not None), None)
                loss = f" loss {last.train_loss:.4f}" if last else ""
                bar.update(task, completed=j.current_step, total=j.total_steps or None,
                           description=f"{j.status} epoch {j.current_epoch:.2f}{loss}")

            job.wait(timeout_s=timeout_s, on_progress=show)
        console.print(f"job {job.id} completed; model {job.output_model_id}")


# --------------------------------------------------------------------------- jobs

#: Eight levels of a text sparkline, lowest first.
_SPARKS = "▁▂▃▄▅▆▇█"


def _sparkline(values: list[float], width: int = 60) -> str:
    """The last ``width`` values as a one-line chart (min to max over those shown)."""
    shown = values[-width:]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = (high - low) or 1.0
    return "".join(_SPARKS[round((v - low) / span * (len(_SPARKS) - 1))] for v in shown)


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    status: str | None = typer.Option(None, help="pending, queued, running, completed, "
                                      "failed or cancelled."),
    page_size: int = 50, cursor: str | None = None,
) -> None:
    """Your training jobs (an admin's: everyone's), newest first."""
    with api_errors():
        page = api(ctx).training.list(status=status, page_size=page_size, cursor=cursor)
    print_table("training jobs", ["id", "name", "method", "status", "progress", "step", "created"],
                [[j.id, j.name, j.method, j.status, f"{j.progress:.0%}",
                  f"{j.current_step}/{j.total_steps}", f"{j.created_at:%Y-%m-%d %H:%M}"]
                 for j in page.items], page.total, page.next_cursor)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str, events: EventsOpt = 10) -> None:
    """One job: status, progress, references, timings, its last metric point and events."""
    with api_errors():
        job = api(ctx).training.get(job_id)
        points = job.metrics()
        log = job.events(limit=1000)["items"]
    rows = [["status", job.status], ["name", job.name], ["method", job.method],
            ["progress", f"{job.progress:.0%} (step {job.current_step}/{job.total_steps}, "
                         f"epoch {job.current_epoch:.2f}/{job.total_epochs:.2f})"],
            ["base model", job.base_model_id], ["dataset", job.dataset_id],
            ["output model", job.output_model_id], ["ray job", job.ray_job_id],
            ["created", job.created_at], ["started", job.started_at],
            ["completed", job.completed_at], ["error", job.error_message]]
    last = next((p for p in reversed(points) if p.train_loss is not None), None)
    if last is not None:
        rows.append(["train loss", f"{last.train_loss:.4f} (step {last.step})"])
    evals = [p for p in points if p.eval_loss is not None]
    if evals:
        rows.append(["eval loss", f"{evals[-1].eval_loss:.4f} (step {evals[-1].step})"])
    print_table(f"job {job.id}", ["field", "value"], [r for r in rows if r[1] is not None])
    if job.evaluation is not None:
        print_table(f"evaluation {job.evaluation.id} on {job.evaluation.n} eval prompts",
                    ["metric", "base", "adapter", "gain"], score_rows(job.evaluation))
    print_events(log[-events:] if events > 0 else [])


@jobs_app.command("logs")
def jobs_logs(
    ctx: typer.Context, job_id: str,
    events: bool = typer.Option(False, "--events", help="The catalog's event log instead "
                                "of the Ray job's driver log."),
) -> None:
    """The Ray job's driver log (or, with --events, the job's event log)."""
    client = api(ctx)
    with api_errors():
        if events:
            after = 0
            while True:
                page = client.training.events(job_id, after=after, limit=1000)
                print_events(page["items"])
                if len(page["items"]) < 1000:
                    return
                after = page["next_after"]
        text = client.training.logs(job_id)
    console.print(text, end="", markup=False, highlight=False)


add_cancel(jobs_app, "job", "Stop the job's Ray job and mark it cancelled.",
           lambda client, job_id: client.training.cancel(job_id))


@jobs_app.command("watch")
def jobs_watch(
    ctx: typer.Context, job_id: str,
    timeout_s: float = typer.Option(24 * 3600, help="Longest wait, seconds."),
) -> None:
    """Follow a job live from its event stream: status changes and log lines as they
    come, a progress bar, and the train loss as a sparkline. Exits 0 when the job
    completes, 1 when it fails or is cancelled."""
    client = api(ctx)
    losses: dict[int, float] = {}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("step"),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    task = bar.add_task("connecting", total=None)
    figure = Text()
    status = "?"
    with api_errors(), Live(Group(bar, figure), console=console, refresh_per_second=4,
                            transient=False) as live:
        for event in client.training.stream(job_id, timeout_s=timeout_s):
            kind = event["type"]
            if kind == "status_change":
                status = event["new_status"]
                error = f": {event['error']}" if event.get("error") else ""
                live.console.print(f"status {event['old_status']} -> {status}{error}",
                                   markup=False, highlight=False)
            elif kind == "log":
                live.console.print(f"{event['level']:7} {event['message']}", markup=False,
                                   highlight=False)
            elif kind == "metrics" and event["metrics"].get("train_loss") is not None:
                losses[int(event["step"])] = float(event["metrics"]["train_loss"])
            elif kind == "progress":
                status = event["status"]
                bar.update(task, completed=event["current_step"],
                           total=event["total_steps"] or None,
                           description=f"{status} epoch {event['current_epoch']:.2f}")
            if losses:
                values = [losses[k] for k in sorted(losses)]
                figure.plain = (f"loss {values[-1]:.4f} (min {min(values):.4f}) "
                                f"{_sparkline(values)}")
    console.print(f"job {job_id} {status}")
    if status != "completed":
        raise typer.Exit(1)


#: Seconds per unit of a ``--ttl`` duration.
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _ttl_seconds(value: str | None) -> int | None:
    """``--ttl``: seconds, or a number with a unit s, m, h or d (``90m``, ``4h``)."""
    if value is None:
        return None
    text = value.strip().lower()
    unit = _TTL_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise typer.BadParameter(f"{value!r}: seconds, or a whole number with s, m, h or d "
                                 "(e.g. 90m, 4h)")
    return int(number) * (unit or 1)


@jobs_app.command("token")
def jobs_token(
    ctx: typer.Context,
    ttl: Annotated[int | None, typer.Option(
        "--ttl", parser=_ttl_seconds, metavar="DURATION",
        help="Lifetime: seconds, or with a unit (90m, 4h, 2d); default 4h, at most 7d.",
        show_default=False)] = None,
    as_json: bool = typer.Option(False, "--json", help="Print the token's record and "
                                 "secret as JSON."),
) -> None:
    """A job token for one `ray job submit`: pass it as GARDEN_JOB_TOKEN instead of your
    API key (the Ray dashboard shows a job's runtime env). Its driver registers one
    training job or batch with it; the token then only reads that job and stops working
    when the job ends or the token expires. Prints the secret alone on stdout (once), and
    an example command on stderr."""
    with api_errors():
        record, secret = api(ctx).training.token(ttl_s=ttl)
    if as_json:
        console.print_json(data={**record.model_dump(mode="json"), "secret": secret})
        return
    print(secret)
    hint = Console(stderr=True, soft_wrap=True)
    hint.print(f"job token {record.id}, expires {record.expires_at:%Y-%m-%d %H:%M %Z}; for "
               "one job, e.g.:", highlight=False)
    env = json.dumps({"env_vars": {"GARDEN_JOB_TOKEN": f"{record.prefix}..."}})
    hint.print(f"  ray job submit --working-dir examples --runtime-env-json '{env}' -- "
               "python -m train_jobs.run --config sft.yaml", markup=False, highlight=False)

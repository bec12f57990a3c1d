"""The ``garden`` command line (typer + rich), built on :class:`garden.Client` and
:mod:`cluster.local`.

``garden demo``, ``garden up | down | status``, ``garden datasets upload | list | show``,
``garden models import | merge | list | publish | lineage``, ``garden train``, ``garden jobs list |
show | logs | cancel | watch | token``, ``garden batch create | list | show | cancel |
download``, ``garden chat``, ``garden images generate``, ``garden carbon``, ``garden
usage``, ``garden keys create | list | limits``. The API URL and key come from
``--api-url``/``--api-key`` or ``GARDEN_API_URL``/``GARDEN_API_KEY``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from garden.cli.media import (
    images_app,
    projects_app,
    providers_app,
    styles_app,
    tags_app,
    themes_app,
    uploads_app,
    videos_app,
)
from garden.client import Client
from garden.errors import GardenError, JobFailedError

app = typer.Typer(help="Model Garden: fine-tune, serve and track models on Ray.",
                  no_args_is_help=True)
datasets_app = typer.Typer(help="Upload and list datasets.", no_args_is_help=True)
models_app = typer.Typer(help="Import and list models.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (admins create them).", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")
app.add_typer(images_app, name="images")
app.add_typer(videos_app, name="videos")
app.add_typer(uploads_app, name="uploads")
app.add_typer(styles_app, name="styles")
app.add_typer(themes_app, name="themes")
app.add_typer(tags_app, name="tags")
app.add_typer(projects_app, name="projects")
app.add_typer(providers_app, name="providers")
app.add_typer(keys_app, name="keys")
jobs_app = typer.Typer(help="List, show, follow and cancel training jobs.",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
batch_app = typer.Typer(help="Batch inference jobs (OpenAI's Batch API on Ray Data LLM).",
                        no_args_is_help=True)
app.add_typer(batch_app, name="batch")

console = Console(soft_wrap=True)  # never break URLs or ids across lines


@app.callback()
def main(
    ctx: typer.Context,
    api_url: Annotated[str | None, typer.Option(envvar="GARDEN_API_URL",
                                                help="Gateway URL.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="GARDEN_API_KEY", show_default=False,
                                                help="API key (Bearer).")] = None,
) -> None:
    ctx.obj = {"api_url": api_url, "api_key": api_key}


def _client(ctx: typer.Context) -> Client:
    obj = ctx.find_root().obj or {}
    return Client(obj.get("api_url"), obj.get("api_key"))


@contextmanager
def _errors() -> Iterator[None]:
    """Print API and job errors in one line each and exit with status 1."""
    try:
        yield
    except GardenError as exc:
        field = f" (field {exc.error.field})" if exc.error.field else ""
        console.print(f"[red]error {exc.status} {exc.code}[/]: {exc.error.message}{field}")
        for detail in (exc.error.details or [])[:10] if isinstance(exc.error.details,
                                                                    list) else []:
            console.print(f"  {detail}")
        raise typer.Exit(1) from exc
    except (JobFailedError, TimeoutError, FileNotFoundError, RuntimeError) as exc:
        # the message as written: quoted logs may hold [brackets] that markup would eat
        console.print(Text.assemble(("error", "red"), f": {exc}"))
        raise typer.Exit(1) from exc


def _is_number(value: Any) -> bool:
    if value is None or value == "":
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _table(title: str, columns: list[str], rows: list[list[Any]], total: int | None = None,
           next_cursor: str | None = None, footer: list[Any] | None = None) -> None:
    """Print a rich table; ``total`` adds an "n of total" caption, ``footer`` a last row
    (bold, after a rule). Number columns are right-aligned and never wrapped; text
    columns fold (ids stay whole, over several lines) when the terminal is narrow."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=None if total is None else
                  f"{len(rows)} of {total}" + (f"; next: --cursor {next_cursor}"
                                               if next_cursor else ""))
    body = [*rows, *([footer] if footer is not None else [])]
    for i, col in enumerate(columns):
        numeric = bool(rows) and all(_is_number(row[i]) for row in rows)
        table.add_column(col, justify="right" if numeric else "left", no_wrap=numeric,
                         overflow="ellipsis" if numeric else "fold")
    for i, row in enumerate(body):
        table.add_row(*["" if v is None else str(v) for v in row],
                      end_section=footer is not None and i == len(rows) - 1,
                      style="bold" if footer is not None and i == len(rows) else None)
    console.print(table)


# --------------------------------------------------------------------------- cluster


@app.command()
def up(
    ray_port: int = typer.Option(6380, help="Ray GCS port (6379 is Redis here)."),
    dashboard_port: int = typer.Option(8265, help="Ray dashboard port."),
    http_port: int = typer.Option(8000, help="Serve HTTP port (API and OpenAI)."),
    agent_port: int = typer.Option(52365, help="Dashboard agent HTTP port (job API); "
                                   "0 picks a free one."),
    num_cpus: int | None = typer.Option(None, help="Logical CPUs of the head."),
    llm_model: str | None = typer.Option(None, help="Catalog base model to serve."),
    admin_key: str | None = typer.Option(None, envvar="GARDEN_ADMIN_KEY",
                                         show_default=False, help="Bootstrap admin key."),
    media: bool = typer.Option(True, help="Deploy the image/video media router."),
    timeout: float = typer.Option(300.0, help="Seconds each step may take (ray start, "
                                  "the catalog, the HTTP proxy)."),
) -> None:
    """Start a local Ray head with the dashboard, the catalog and the Serve apps.

    A port already taken stops it at once, naming the holder and the flag to change; a
    failed start keeps Ray's logs under $GARDEN_HOME/logs/ and quotes their last lines."""
    from cluster import local
    from garden.demo import console_app

    with _errors(), console.status("starting Ray, the catalog and the apps...") as spinner:
        cluster = local.up(ray_port=ray_port, dashboard_port=dashboard_port,
                           http_port=http_port, agent_port=agent_port, num_cpus=num_cpus,
                           llm_model=llm_model, admin_key=admin_key, media=media,
                           apps=[partial(console_app, http_port, dashboard_port)],
                           timeout_s=timeout, progress=lambda s: spinner.update(f"{s}..."))
    console.print(f"API        {cluster.api_url}  (OpenAPI: {cluster.api_url}/openapi.json)")
    console.print(f"OpenAI     {cluster.openai_base_url}")
    console.print(f"Dashboard  {cluster.dashboard_url}")
    if cluster.console_url:
        console.print(f"Console    {cluster.console_url}  (sign in with an API key)")
    console.print(f"Ray        {cluster.address}")


@app.command()
def demo(
    steps: int = typer.Option(30, help="Training steps."),
    workers: int = typer.Option(2, help="Ray Train workers."),
    questions: int = typer.Option(5, help="Held-out questions to ask both models."),
    http_port: int = typer.Option(8000, help="Serve HTTP port (API and OpenAI)."),
    ray_port: int = typer.Option(6380, help="Ray GCS port (6379 is Redis here)."),
    dashboard_port: int = typer.Option(8265, help="Ray dashboard port."),
    agent_port: int = typer.Option(52365, help="Dashboard agent port (job API)."),
) -> None:
    """The main job: train a LoRA on chatterbot, serve it, compare it with the base model."""
    from garden.demo import DemoSettings, run_demo

    settings = DemoSettings(steps=steps, workers=workers, questions=questions,
                            http_port=http_port, ray_port=ray_port,
                            dashboard_port=dashboard_port, agent_port=agent_port)
    with _errors():
        run_demo(settings, console)


@app.command()
def down() -> None:
    """Stop the local cluster started by ``garden up`` (only its own processes)."""
    from cluster import local

    stopped = local.down()
    console.print(f"stopped {stopped} process(es)" if stopped else "no local cluster recorded")


@app.command()
def status() -> None:
    """The local cluster's URLs, processes and health."""
    from cluster import local

    info = local.status()
    if info["cluster"] is None:
        console.print("no local cluster recorded (garden up)")
        raise typer.Exit(1)
    for key in ("api_url", "openai_base_url", "dashboard_url", "console_url", "address"):
        if info["cluster"].get(key):
            console.print(f"{key:16} {info['cluster'][key]}")
    console.print(f"{'processes':16} {info['processes']}")
    health = info["health"] or {}
    console.print(f"{'health':16} {health.get('status')}")
    for name, comp in (health.get("components") or {}).items():
        console.print(f"  {name:14} {comp['status']} {comp.get('detail') or ''}")


# --------------------------------------------------------------------------- datasets


@datasets_app.command("upload")
def datasets_upload(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="JSONL, JSON, CSV or Parquet file.")],
    name: str | None = typer.Option(None, help="Dataset name (default: file stem)."),
    description: str | None = typer.Option(None),
    column_mapping: str | None = typer.Option(
        None, help='JSON object {file column: row field}, e.g. '
        '\'{"question": "instruction", "answer": "output"}\'.'),
    base_model: str | None = typer.Option(
        None, help="Model (id or name) whose tokenizer counts the statistics' lengths "
        "(default: characters)."),
) -> None:
    """Upload a dataset file (rows of alpaca, sharegpt, OpenAI messages, preference pairs or
    batch requests; CSV and Parquet columns map by name)."""
    mapping = None
    if column_mapping:
        try:
            mapping = json.loads(column_mapping)
        except json.JSONDecodeError as exc:
            console.print(f"[red]error[/]: --column-mapping is not JSON: {exc.msg}")
            raise typer.Exit(1) from exc
    with _errors():
        ds = _client(ctx).datasets.upload(path, name, description=description,
                                          column_mapping=mapping, base_model_id=base_model)
    console.print(f"uploaded {ds.id}: {ds.name} v{ds.version}, {ds.num_rows} rows, {ds.format}"
                  f" (from {ds.file_format})")


@datasets_app.command("list")
def datasets_list(
    ctx: typer.Context, name: str | None = None, page_size: int = 50,
    cursor: str | None = None,
) -> None:
    with _errors():
        page = _client(ctx).datasets.list(name=name, page_size=page_size, cursor=cursor)
    _table("datasets", ["id", "name", "version", "format", "rows", "created"],
           [[d.id, d.name, d.version, d.format, d.num_rows, f"{d.created_at:%Y-%m-%d %H:%M}"]
            for d in page.items], page.total, page.next_cursor)


@datasets_app.command("show")
def datasets_show(
    ctx: typer.Context, dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
) -> None:
    """A dataset, its schema (columns, required columns, a sample row) and its statistics
    (prompt and answer lengths)."""
    with _errors():
        ds = _client(ctx).datasets.get(dataset_id)
    info = Table(title=f"dataset {ds.id}", box=box.SIMPLE, show_header=False)
    for key, value in (("name", f"{ds.name} v{ds.version}"), ("format", ds.format),
                       ("file format", ds.file_format), ("rows", ds.num_rows),
                       ("size", f"{ds.size_bytes} bytes"), ("path", ds.path),
                       ("source", ds.source), ("description", ds.description),
                       ("owner", ds.user_id), ("created", f"{ds.created_at:%Y-%m-%d %H:%M}")):
        info.add_row(key, "" if value is None else str(value))
    console.print(info)
    schema = ds.dataset_schema
    if schema is None:
        console.print("schema: not recorded")
    else:
        table = Table(title="schema", box=box.SIMPLE)
        table.add_column("column")
        table.add_column("required")
        table.add_column("sample", overflow="fold")
        for column in schema.columns:
            sample = schema.sample.get(column)
            text = sample if isinstance(sample, str) else json.dumps(sample, ensure_ascii=False)
            table.add_row(column, "yes" if column in schema.required_columns else "",
                          text if len(text) <= 200 else text[:199] + "…")
        console.print(table)
    stats = ds.statistics
    if stats is None:
        console.print("statistics: none (batch request file, or not recorded)")
        return
    unit = stats.length_unit + (f" of {stats.tokenizer}" if stats.tokenizer else "")
    table = Table(title=f"statistics ({unit})", box=box.SIMPLE, show_header=False)
    for key, value in (("rows", stats.num_rows),
                       ("avg prompt length", f"{stats.avg_input_length:.1f}"),
                       ("avg answer length", f"{stats.avg_output_length:.1f}"),
                       ("min length", stats.min_length), ("max length", stats.max_length),
                       ("total tokens", stats.total_tokens)):
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


# --------------------------------------------------------------------------- models


@models_app.command("import")
def models_import(
    ctx: typer.Context,
    source: str | None = typer.Option(None, help="Path of a .gguf file or HF folder on "
                                      "the cluster (default: bundled SmolLM2-135M)."),
    name: str | None = typer.Option(None),
) -> None:
    """Admin: import a base model into the catalog (published for everyone)."""
    with _errors(), console.status("importing (converting weights)..."):
        model = _client(ctx).models.import_base(source, name)
    console.print(f"imported {model.id}: {model.name} v{model.version} at {model.path}")


@models_app.command("merge")
def models_merge(
    ctx: typer.Context,
    adapter: str = typer.Argument(..., help="Adapter id, name or name:version."),
    name: str | None = typer.Option(None, help="Name of the merged model "
                                    "(default: <adapter name>-merged)."),
) -> None:
    """Merge a LoRA adapter into its base model's weights: a new base model of yours,
    deployable as its own LLM app."""
    with _errors(), console.status("merging (loading the weights)..."):
        model = _client(ctx).models.merge(adapter, name=name)
    console.print(f"merged {model.merged_from_id} into {model.id}: {model.name} "
                  f"v{model.version} at {model.path}")


@models_app.command("list")
def models_list(
    ctx: typer.Context, kind: str | None = None, name: str | None = None,
    published: bool | None = typer.Option(None, "--published/--mine"),
    page_size: int = 50, cursor: str | None = None,
) -> None:
    with _errors():
        page = _client(ctx).models.list(kind=kind, name=name, published=published,
                                         page_size=page_size, cursor=cursor)
    _table("models", ["id", "name", "version", "kind", "base", "published"],
           [[m.id, m.name, m.version, m.kind, m.base_model_id, m.published]
            for m in page.items], page.total, page.next_cursor)


@models_app.command("publish")
def models_publish(
    ctx: typer.Context, model: str = typer.Argument(..., help="Model id or name."),
    unpublish: bool = typer.Option(False, "--unpublish", help="Make it private again."),
) -> None:
    """Publish one of your models (everyone may then use it), or --unpublish it."""
    with _errors():
        m = _client(ctx).models.publish(model, published=not unpublish)
    console.print(f"{m.id}: {m.name} v{m.version} {'published' if m.published else 'private'}")


@models_app.command("lineage")
def models_lineage(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model id, name or name:version."),
    as_json: bool = typer.Option(False, "--json", help="Print the lineage as JSON."),
) -> None:
    """A model's lineage as a tree (base model, training job, datasets, adapters, merges,
    requests served) and a table of its serving totals and training carbon and metrics.
    Rows you may not read are left out; serving totals are every caller's for your own
    models, else your own requests."""
    with _errors():
        lineage = _client(ctx).models.lineage(model)
    if as_json:
        console.print(lineage.model_dump_json(indent=2), markup=False, highlight=False)
        return

    def model_text(m: Any) -> str:
        return f"{m.name} v{m.version} ({m.kind}) {m.id}"

    def data_text(d: Any) -> str:
        return f"{d.name} v{d.version} ({d.num_rows} rows) {d.id}"

    m, job, served = lineage.model, lineage.training_job, lineage.serving
    def text(line: str) -> Text:  # plain text: no markup; a long id folds, never cropped
        return Text(line, overflow="fold")

    tree = Tree(text(f"model {model_text(m)}"))
    if lineage.base_model is not None:
        tree.add(text(f"base model: {model_text(lineage.base_model)}"))
    if lineage.merged_from is not None:
        tree.add(text(f"merged from: {model_text(lineage.merged_from)}"))
    data_parent = tree
    if job is not None:
        data_parent = tree.add(text(f"training job: {job.name} ({job.status}) {job.id}"))
    if lineage.dataset is not None:
        data_parent.add(text(f"trained on: {data_text(lineage.dataset)}"))
    if lineage.eval_dataset is not None:
        data_parent.add(text(f"evaluated on: {data_text(lineage.eval_dataset)}"))
    for title, models in (("adapters", lineage.adapters), ("merged into", lineage.merged)):
        if models:
            branch = tree.add(text(f"{title} ({len(models)})"))
            for other in models:
                branch.add(text(model_text(other)))
    tokens = served.prompt_tokens + served.completion_tokens
    who = "all callers" if served.scope == "all" else "your requests only"
    tree.add(text(f"served: {served.requests} requests, {tokens} tokens ({who})"))
    console.print(tree, soft_wrap=False)

    rows: list[list[Any]] = [
        ["requests", served.requests], ["prompt tokens", served.prompt_tokens],
        ["completion tokens", served.completion_tokens],
        ["cost USD", f"{served.cost_usd:.4f}"],
        ["serving energy kWh", f"{served.energy_kwh:.4g}"],
        ["serving kg CO2eq", f"{served.emissions_kg:.4g}"]]
    train_kwh = job.energy_kwh if job is not None and job.energy_kwh is not None \
        else m.energy_kwh
    train_kg = job.emissions_kg if job is not None and job.emissions_kg is not None \
        else m.emissions_kg
    if train_kwh is not None:
        rows.append(["training energy kWh", f"{train_kwh:.4g}"])
    if train_kg is not None:
        rows.append(["training kg CO2eq", f"{train_kg:.4g}"])
    if job is not None:
        for label, loss in (("eval loss before", job.eval_loss_before),
                            ("eval loss after", job.eval_loss_after)):
            if loss is not None:
                rows.append([label, f"{loss:.4f}"])
    rows += [[name, f"{value:.4f}"] for name, value in sorted(m.metrics.items())]
    _table(f"serving ({who}) and training", ["", "value"], rows)


# --------------------------------------------------------------------------- training


@app.command()
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
    client = _client(ctx)
    with _errors():
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
    with _errors():
        page = _client(ctx).training.list(status=status, page_size=page_size, cursor=cursor)
    _table("training jobs", ["id", "name", "method", "status", "progress", "step", "created"],
           [[j.id, j.name, j.method, j.status, f"{j.progress:.0%}",
             f"{j.current_step}/{j.total_steps}", f"{j.created_at:%Y-%m-%d %H:%M}"]
            for j in page.items], page.total, page.next_cursor)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str,
              events: int = typer.Option(10, help="Last event-log lines shown.")) -> None:
    """One job: status, progress, references, timings, its last metric point and events."""
    client = _client(ctx)
    with _errors():
        job = client.training.get(job_id)
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
    _table(f"job {job.id}", ["field", "value"], [r for r in rows if r[1] is not None])
    for e in log[-events:] if events > 0 else []:
        console.print(f"{e['created_at']}  {e['level']:7}  {e['message']}", markup=False,
                      highlight=False)


@jobs_app.command("logs")
def jobs_logs(
    ctx: typer.Context, job_id: str,
    events: bool = typer.Option(False, "--events", help="The catalog's event log instead "
                                "of the Ray job's driver log."),
) -> None:
    """The Ray job's driver log (or, with --events, the job's event log)."""
    client = _client(ctx)
    with _errors():
        if events:
            after = 0
            while True:
                page = client.training.events(job_id, after=after, limit=1000)
                for e in page["items"]:
                    console.print(f"{e['created_at']}  {e['level']:7}  {e['message']}",
                                  markup=False, highlight=False)
                if len(page["items"]) < 1000:
                    return
                after = page["next_after"]
        text = client.training.logs(job_id)
    console.print(text, end="", markup=False, highlight=False)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: str) -> None:
    """Stop the job's Ray job and mark it cancelled."""
    with _errors():
        job = _client(ctx).training.cancel(job_id)
    console.print(f"job {job.id} {job.status}")


@jobs_app.command("watch")
def jobs_watch(
    ctx: typer.Context, job_id: str,
    timeout_s: float = typer.Option(24 * 3600, help="Longest wait, seconds."),
) -> None:
    """Follow a job live from its event stream: status changes and log lines as they
    come, a progress bar, and the train loss as a sparkline. Exits 0 when the job
    completes, 1 when it fails or is cancelled."""
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    client = _client(ctx)
    losses: dict[int, float] = {}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("step"),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    task = bar.add_task("connecting", total=None)
    figure = Text()
    status = "?"
    with _errors(), Live(Group(bar, figure), console=console, refresh_per_second=4,
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
    with _errors():
        record, secret = _client(ctx).training.token(ttl_s=ttl)
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


# --------------------------------------------------------------------------- batches


def _batch_rows(b: Any) -> list[list[Any]]:
    counts = b.request_counts
    return [["status", b.status], ["endpoint", b.endpoint], ["input file", b.input_file_id],
            ["lines", f"{counts.completed} done, {counts.failed} failed of {counts.total}"],
            ["tokens", f"{b.usage.input_tokens} in, {b.usage.output_tokens} out"],
            ["energy", f"{b.energy_kwh:.6f} kWh" if b.energy_kwh is not None else None],
            ["emissions", f"{b.emissions_kg * 1000:.4f} g CO2eq"
             if b.emissions_kg is not None else None],
            ["output file", b.output_file_id], ["error file", b.error_file_id],
            ["ray job", b.ray_job_id], ["metadata", b.metadata], ["created", b.created_at],
            ["completed", b.completed_at or b.failed_at or b.cancelled_at],
            ["errors", "; ".join(e.message for e in b.errors.data) if b.errors else None]]


@batch_app.command("create")
def batch_create(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(
        help="A JSONL file of request lines {custom_id, method, url, body}: uploaded "
        "first.")] = None,
    input_file_id: str | None = typer.Option(None, help="An uploaded dataset of request "
                                             "lines (instead of FILE)."),
    endpoint: str = typer.Option("/v1/chat/completions",
                                 help="/v1/chat/completions or /v1/completions."),
    metadata: Annotated[list[str] | None, typer.Option(
        "--metadata", help="key=value, repeatable.")] = None,
    wait: bool = typer.Option(False, "--wait", help="Wait until the batch ends."),
    timeout_s: float = typer.Option(24 * 3600, help="Longest wait with --wait, seconds."),
) -> None:
    """Create a batch (and start its Ray job); prints its id."""
    from garden.client.batches import BatchFailedError

    if (file is None) == (input_file_id is None):
        console.print("[red]error[/]: give FILE or --input-file-id (one of them)")
        raise typer.Exit(2)
    pairs = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            console.print(f"[red]error[/]: --metadata {item!r}: expected key=value")
            raise typer.Exit(2)
        pairs[key] = value
    client = _client(ctx)
    with _errors():
        if file is not None:
            input_file_id = client.datasets.upload(file).id
            console.print(f"uploaded {file} as dataset {input_file_id}")
        assert input_file_id is not None
        batch = client.batches.create(input_file_id=input_file_id, endpoint=endpoint,
                                      metadata=pairs or None)
        console.print(f"batch {batch.id} {batch.status}")
        if wait:
            try:
                batch = batch.wait(timeout_s=timeout_s)
            except BatchFailedError as exc:
                console.print(f"[red]error[/]: {exc}")
                raise typer.Exit(1) from exc
            console.print(f"batch {batch.id} {batch.status}: "
                          f"{batch.request_counts.completed} done, "
                          f"{batch.request_counts.failed} failed")


@batch_app.command("list")
def batch_list(
    ctx: typer.Context,
    status: str | None = typer.Option(None, help="validating, in_progress, finalizing, "
                                      "completed, failed, cancelling, cancelled, expired."),
    limit: int = typer.Option(20, help="Most batches listed."),
    after: str | None = typer.Option(None, help="List the batches after this batch id."),
) -> None:
    """Your batches (an admin's: everyone's), newest first."""
    with _errors():
        items = _client(ctx).batches.list(status=status, limit=limit, after=after)
    _table("batches", ["id", "status", "endpoint", "done", "failed", "total", "created"],
           [[b.id, b.status, b.endpoint, b.request_counts.completed, b.request_counts.failed,
             b.request_counts.total, f"{b.created_at:%Y-%m-%d %H:%M}"] for b in items])


@batch_app.command("show")
def batch_show(ctx: typer.Context, batch_id: str,
               events: int = typer.Option(10, help="Last event-log lines shown.")) -> None:
    """One batch: status, line counts, tokens, energy, files and its last events."""
    client = _client(ctx)
    with _errors():
        batch = client.batches.get(batch_id)
        log = client.batches.events(batch_id, limit=1000)["items"]
    _table(f"batch {batch.id}", ["field", "value"],
           [r for r in _batch_rows(batch) if r[1] is not None])
    for e in log[-events:] if events > 0 else []:
        console.print(f"{e['created_at']}  {e['level']:7}  {e['message']}", markup=False,
                      highlight=False)


@batch_app.command("cancel")
def batch_cancel(ctx: typer.Context, batch_id: str) -> None:
    """Cancel a batch: it stops and keeps the lines done so far in its output file."""
    with _errors():
        batch = _client(ctx).batches.cancel(batch_id)
    console.print(f"batch {batch.id} {batch.status}")


@batch_app.command("download")
def batch_download(
    ctx: typer.Context, batch_id: str,
    errors: bool = typer.Option(False, "--errors", help="The error file, not the output."),
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to save (default <batch id>_<kind>.jsonl).")] = None,
) -> None:
    """Save a batch's output file (or, with --errors, its error file) as JSONL."""
    with _errors():
        path = _client(ctx).batches.download(batch_id, "errors" if errors else "output",
                                             output)
    console.print(f"saved {path}")


# --------------------------------------------------------------------------- chat, images


@app.command()
def chat(
    ctx: typer.Context,
    model: str = typer.Option(..., help="Served model (base, base:adapter or model id)."),
    prompt: str | None = typer.Argument(None, help="One message; omit for a session."),
    max_tokens: int = typer.Option(256),
) -> None:
    """Chat through the OpenAI-compatible endpoint (streamed)."""
    import openai

    oa = _client(ctx).openai(timeout=600)
    messages: list[dict[str, str]] = []
    prompts = [prompt] if prompt else None
    while True:
        text = prompts.pop(0) if prompts else (None if prompts is not None else
                                               console.input("[bold]you>[/] "))
        if not text or text.strip() in ("exit", "quit"):
            return
        messages.append({"role": "user", "content": text})
        reply = []
        try:
            stream = oa.chat.completions.create(model=model, messages=messages,
                                                max_tokens=max_tokens, stream=True)
            for chunk in stream:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    reply.append(piece)
                    console.print(piece, end="", markup=False, highlight=False)
        except openai.APIError as exc:
            console.print(f"[red]error[/]: {exc}")
            raise typer.Exit(1) from exc
        console.print()
        messages.append({"role": "assistant", "content": "".join(reply)})


# --------------------------------------------------------------------------- carbon, keys


@app.command()
def carbon(
    ctx: typer.Context,
    group_by: str = typer.Option("month", help="model, job, day, month or source."),
    since: datetime | None = None, until: datetime | None = None,
    csv: bool = typer.Option(False, "--csv", help="Print every record as CSV instead."),
) -> None:
    """Energy (kWh) and emissions (kg CO2eq): totals, training vs inference, each model's
    share, and the rows grouped by --group-by."""
    client = _client(ctx)
    with _errors():
        if csv:
            console.print(client.carbon.export_csv(since=since, until=until), end="",
                          markup=False, highlight=False)
            return
        summary = client.carbon.summary(group_by, since=since, until=until)  # type: ignore[arg-type]
    period = summary.period
    console.print(
        f"total {summary.total_emissions_kg:.6f} kg CO2eq, {summary.total_energy_kwh:.6f} kWh"
        f" (from {period.get('since') or 'the start'} to {period.get('until') or 'now'})")
    console.print(f"training  {summary.training_emissions_kg:.6f} kg CO2eq, "
                  f"{summary.num_training_jobs} job(s)")
    console.print(f"inference {summary.inference_emissions_kg:.6f} kg CO2eq, "
                  f"{summary.num_inference_requests} request(s)")
    _table("carbon by model", ["model id", "name", "kg CO2eq", "energy kWh", "share %"],
           [[m.model_id, m.model_name, f"{m.emissions_kg:.6f}", f"{m.energy_kwh:.6f}",
             f"{m.percentage:.1f}"] for m in summary.by_model])
    _table(f"carbon by {summary.group_by}", [group_by, "energy kWh", "kg CO2eq", "records"],
           [[r.key, f"{r.energy_kwh:.6f}", f"{r.emissions_kg:.6f}", r.records]
            for r in summary.rows])


def _usage_row(label: Any, row: Any) -> list[Any]:
    """A usage table row: energy in Wh and emissions in g (a request's share is small)."""
    cost = None if row.cost_usd is None else f"{row.cost_usd:.4f}"
    return [label, row.requests, row.prompt_tokens, row.completion_tokens, cost,
            f"{row.energy_kwh * 1000:.4g}", f"{row.emissions_kg * 1000:.4g}"]


@app.command()
def usage(
    ctx: typer.Context,
    by: str = typer.Option("model", "--by", help="user, key, model, adapter, day or month."),
    since: Annotated[datetime | None, typer.Option(help="Start (inclusive, UTC).")] = None,
    until: Annotated[datetime | None, typer.Option(help="End (exclusive, UTC).")] = None,
    user: str | None = typer.Option(None, help="Admins: one user's usage only."),
    csv: str | None = typer.Option(None, "--csv", metavar="FILE",
                                   help="Write every record as CSV to FILE ('-': stdout)."),
) -> None:
    """Requests, prompt and completion tokens, cost (USD, where known), energy (Wh) and
    emissions (g CO2eq), grouped, with the totals; a user sees their own usage, an admin
    everyone's. --csv writes every record (kWh, kg) instead."""
    client = _client(ctx)
    with _errors():
        if csv is not None:
            dest = sys.stdout if csv == "-" else Path(csv)
            size = client.usage.export_csv(dest, since=since, until=until, user_id=user)
            if csv != "-":
                console.print(f"wrote {csv} ({size} bytes)")
            return
        summary = client.usage.summary(by, since=since, until=until,  # type: ignore[arg-type]
                                       user_id=user)
    _table(f"usage by {summary.group_by}",
           [by, "requests", "prompt", "completion", "USD", "Wh", "g CO2eq"],
           [_usage_row(r.key, r) for r in summary.rows],
           footer=_usage_row("total", summary.total))


def _limit(value: int | None) -> int | None:
    """A CLI limit: 0 means no limit (the API's null); None leaves it out."""
    return None if value == 0 else value


@keys_app.command("create")
def keys_create(
    ctx: typer.Context, user_id: str, name: str = typer.Option("cli"),
    role: str = typer.Option("user", help="user or admin"),
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="Requests per minute."),
    tpm: int | None = typer.Option(None, "--tpm", min=1, help="Tokens per minute."),
    budget: int | None = typer.Option(None, "--budget", min=1,
                                      help="Tokens in the key's lifetime."),
) -> None:
    """Admin: create a key for USER_ID (optionally limited); the secret is printed once."""
    with _errors():
        record, secret = _client(ctx).keys.create(user_id, name, role, rpm_limit=rpm,
                                                  tpm_limit=tpm, token_budget=budget)
    console.print(json.dumps({"id": record.id, "user_id": record.user_id,
                              "role": str(record.role), "rpm_limit": record.rpm_limit,
                              "tpm_limit": record.tpm_limit,
                              "token_budget": record.token_budget, "secret": secret}))


@keys_app.command("limits")
def keys_limits(
    ctx: typer.Context, key_id: str,
    rpm: int | None = typer.Option(None, "--rpm", min=0,
                                   help="Requests per minute (0: no limit)."),
    tpm: int | None = typer.Option(None, "--tpm", min=0, help="Tokens per minute (0: no limit)."),
    budget: int | None = typer.Option(None, "--budget", min=0,
                                      help="Tokens in the key's lifetime (0: no limit)."),
) -> None:
    """Admin: set or clear (0) KEY_ID's limits; limits not given keep their value."""
    from garden.client.keys import UNSET

    changes = {name: _limit(value) for name, value in
               (("rpm_limit", rpm), ("tpm_limit", tpm), ("token_budget", budget))
               if value is not None}
    with _errors():
        key = _client(ctx).keys.set_limits(
            key_id, **{k: changes.get(k, UNSET) for k in ("rpm_limit", "tpm_limit",
                                                            "token_budget")})
    _table("key", ["id", "user", "rpm", "tpm", "budget", "tokens used"],
           [[key.id, key.user_id, key.rpm_limit, key.tpm_limit, key.token_budget,
             key.tokens_used]])


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    with _errors():
        page = _client(ctx).keys.list()
    _table("keys", ["id", "user", "name", "prefix", "role", "rpm", "tpm", "budget",
                    "tokens used"],
           [[k.id, k.user_id, k.name, k.prefix, k.role, k.rpm_limit, k.tpm_limit,
             k.token_budget, k.tokens_used] for k in page.items], page.total)

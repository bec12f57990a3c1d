"""``garden models import | merge | list | publish | lineage | evaluate`` and ``garden
chat`` (a served model, through the OpenAI-compatible endpoint)."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text
from rich.tree import Tree

from garden.cli.output import api, api_errors, console, print_table, score_rows

models_app = typer.Typer(help="Import and list models.", no_args_is_help=True)


@models_app.command("import")
def models_import(
    ctx: typer.Context,
    source: str | None = typer.Option(None, help="Path of a .gguf file or HF folder on "
                                      "the cluster (default: bundled SmolLM2-135M)."),
    name: str | None = typer.Option(None),
) -> None:
    """Admin: import a base model into the catalog (published for everyone)."""
    with api_errors(), console.status("importing (converting weights)..."):
        model = api(ctx).models.import_base(source, name)
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
    with api_errors(), console.status("merging (loading the weights)..."):
        model = api(ctx).models.merge(adapter, name=name)
    console.print(f"merged {model.merged_from_id} into {model.id}: {model.name} "
                  f"v{model.version} at {model.path}")


@models_app.command("list")
def models_list(
    ctx: typer.Context, kind: str | None = None, name: str | None = None,
    published: bool | None = typer.Option(None, "--published/--mine"),
    page_size: int = 50, cursor: str | None = None,
) -> None:
    with api_errors():
        page = api(ctx).models.list(kind=kind, name=name, published=published,
                                    page_size=page_size, cursor=cursor)
    print_table("models", ["id", "name", "version", "kind", "base", "published"],
                [[m.id, m.name, m.version, m.kind, m.base_model_id, m.published]
                 for m in page.items], page.total, page.next_cursor)


@models_app.command("publish")
def models_publish(
    ctx: typer.Context, model: str = typer.Argument(..., help="Model id or name."),
    unpublish: bool = typer.Option(False, "--unpublish", help="Make it private again."),
) -> None:
    """Publish one of your models (everyone may then use it), or --unpublish it."""
    with api_errors():
        m = api(ctx).models.publish(model, published=not unpublish)
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
    with api_errors():
        lineage = api(ctx).models.lineage(model)
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
    print_table(f"serving ({who}) and training", ["", "value"], rows)
    if m.evaluation is not None:
        print_table(f"evaluation {m.evaluation.id} on {m.evaluation.n} prompts",
                    ["metric", "base", "adapter", "gain"], score_rows(m.evaluation))


@models_app.command("evaluate")
def models_evaluate(
    ctx: typer.Context,
    adapter: str = typer.Argument(..., help="Adapter id, name or name:version."),
    dataset: str = typer.Option(..., "--dataset", help="Dataset id of the eval prompts "
                                "(chats: the last assistant turn is the reference)."),
    n: int = typer.Option(50, help="Eval prompts each model answers (the first n)."),
    max_tokens: int = typer.Option(64, help="Longest answer, tokens (greedy)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the scores."),
) -> None:
    """Score an adapter's answers against its base model's on a dataset (ROUGE-L, BLEU,
    exact match), as a Ray job; with --wait, print the scores and a few examples."""
    client = api(ctx)
    with api_errors():
        evaluation = client.models.evaluate(adapter, dataset, n=n, max_tokens=max_tokens)
        console.print(f"evaluation {evaluation.id} submitted (Ray job "
                      f"{evaluation.ray_job_id})", markup=False, highlight=False)
        if not wait:
            return
        with console.status("base model and adapter answering..."):
            evaluation = client.models.wait_evaluation(evaluation.id)
    if evaluation.status != "completed":
        console.print(f"[red]evaluation {evaluation.id} {evaluation.status}[/]: "
                      f"{evaluation.error_message}", highlight=False)
        raise typer.Exit(1)
    print_table(f"evaluation {evaluation.id} on {evaluation.n} prompts",
                ["metric", "base", "adapter", "gain"], score_rows(evaluation))
    print_table("examples", ["prompt", "reference", "base", "adapter"],
                [[x.prompt, x.reference, x.base, x.adapter] for x in evaluation.examples[:3]])


def chat(
    ctx: typer.Context,
    model: str = typer.Option(..., help="Served model (base, base:adapter or model id)."),
    prompt: str | None = typer.Argument(None, help="One message; omit for a session."),
    max_tokens: int = typer.Option(256),
) -> None:
    """Chat through the OpenAI-compatible endpoint (streamed)."""
    import openai

    oa = api(ctx).openai(timeout=600)
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

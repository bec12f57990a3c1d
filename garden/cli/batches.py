"""``garden batch create | list | show | cancel | download``: batch inference jobs
(OpenAI's Batch API on Ray Data LLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garden.cli.options import EventsOpt
from garden.cli.output import add_cancel, api, api_errors, console, print_events, print_table
from garden.client.batches import BatchFailedError

batch_app = typer.Typer(help="Batch inference jobs (OpenAI's Batch API on Ray Data LLM).",
                        no_args_is_help=True)


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
    client = api(ctx)
    with api_errors():
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
    with api_errors():
        items = api(ctx).batches.list(status=status, limit=limit, after=after)
    print_table("batches", ["id", "status", "endpoint", "done", "failed", "total", "created"],
                [[b.id, b.status, b.endpoint, b.request_counts.completed, b.request_counts.failed,
                  b.request_counts.total, f"{b.created_at:%Y-%m-%d %H:%M}"] for b in items])


@batch_app.command("show")
def batch_show(ctx: typer.Context, batch_id: str, events: EventsOpt = 10) -> None:
    """One batch: status, line counts, tokens, energy, files and its last events."""
    client = api(ctx)
    with api_errors():
        batch = client.batches.get(batch_id)
        log = client.batches.events(batch_id, limit=1000)["items"]
    print_table(f"batch {batch.id}", ["field", "value"],
                [r for r in _batch_rows(batch) if r[1] is not None])
    print_events(log[-events:] if events > 0 else [])


add_cancel(
    batch_app, "batch",
    "Cancel a batch: it stops and keeps the lines done so far in its output file.",
    lambda client, batch_id: client.batches.cancel(batch_id))


@batch_app.command("download")
def batch_download(
    ctx: typer.Context, batch_id: str,
    errors: bool = typer.Option(False, "--errors", help="The error file, not the output."),
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to save (default <batch id>_<kind>.jsonl).")] = None,
) -> None:
    """Save a batch's output file (or, with --errors, its error file) as JSONL."""
    with api_errors():
        path = api(ctx).batches.download(batch_id, "errors" if errors else "output",
                                         output)
    console.print(f"saved {path}")

"""``garden datasets upload | list | show``: dataset files into the catalog, with their
schema and statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from garden.cli.output import api, api_errors, console, print_table

datasets_app = typer.Typer(help="Upload and list datasets.", no_args_is_help=True)


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
    with api_errors():
        ds = api(ctx).datasets.upload(path, name, description=description,
                                      column_mapping=mapping, base_model_id=base_model)
    console.print(f"uploaded {ds.id}: {ds.name} v{ds.version}, {ds.num_rows} rows, {ds.format}"
                  f" (from {ds.file_format})")


@datasets_app.command("list")
def datasets_list(
    ctx: typer.Context, name: str | None = None, page_size: int = 50,
    cursor: str | None = None,
) -> None:
    with api_errors():
        page = api(ctx).datasets.list(name=name, page_size=page_size, cursor=cursor)
    print_table("datasets", ["id", "name", "version", "format", "rows", "created"],
                [[d.id, d.name, d.version, d.format, d.num_rows, f"{d.created_at:%Y-%m-%d %H:%M}"]
                 for d in page.items], page.total, page.next_cursor)


@datasets_app.command("show")
def datasets_show(
    ctx: typer.Context, dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
) -> None:
    """A dataset, its schema (columns, required columns, a sample row) and its statistics
    (prompt and answer lengths)."""
    with api_errors():
        ds = api(ctx).datasets.get(dataset_id)
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

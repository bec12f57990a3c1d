"""What every ``garden`` command group prints with: the console, the client made from the
``--api-url``/``--api-key`` of the typer context, the one-line error printing (exit
status 1), the tables and field lists, the event-log lines and the ``cancel`` command
that training jobs and batches share. The options several groups take, the local
cluster's port defaults among them, are :mod:`garden.cli.options`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from garden.client import Client
from garden.errors import GardenError, JobFailedError

console = Console(soft_wrap=True)  # never break URLs or ids across lines


def api(ctx: typer.Context) -> Client:
    """The API client of the root command's ``--api-url`` and ``--api-key`` (their
    environment variables, or the client's defaults)."""
    obj = ctx.find_root().obj or {}
    return Client(obj.get("api_url"), obj.get("api_key"))


@contextmanager
def api_errors(*, client_checks: bool = False) -> Iterator[None]:
    """Print API and job errors in one line each and exit with status 1; with
    ``client_checks``, also the client's own checks made before a request (ValueError)."""
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
    except ValueError as exc:
        if not client_checks:
            raise
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from exc


def media_errors() -> AbstractContextManager[None]:
    """:func:`api_errors` as the media studio's commands (styles, themes, tags, projects,
    uploads, images, videos, providers) print them: the client's checks included."""
    return api_errors(client_checks=True)


def add_cancel(group: typer.Typer, noun: str, doc: str,
               cancel: Callable[[Client, str], Any]) -> None:
    """Register ``cancel <noun>_id`` on ``group`` (help text ``doc``): it calls
    ``cancel(client, id)`` and prints ``<noun> <id> <status>`` of the record returned."""

    def command(ctx: typer.Context,
                record_id: str = typer.Argument(..., metavar=f"{noun}_id")) -> None:
        with api_errors():
            record = cancel(api(ctx), record_id)
        console.print(f"{noun} {record.id} {record.status}")

    command.__doc__ = doc
    group.command("cancel")(command)


def _is_number(value: Any) -> bool:
    if value is None or value == "":
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def print_table(title: str, columns: list[str], rows: list[list[Any]],
                total: int | None = None, next_cursor: str | None = None,
                footer: list[Any] | None = None) -> None:
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


def print_fields(title: str, pairs: list[tuple[str, Any]]) -> None:
    """Print ``(name, value)`` pairs as a two-column table; None values are left out."""
    table = Table(title=title, box=box.SIMPLE, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in pairs:
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        table.add_row(key, str(value))
    console.print(table)


def print_events(events: list[dict[str, Any]]) -> None:
    """Print event-log entries (``created_at``, ``level``, ``message``), one a line, as
    written (no markup)."""
    for e in events:
        console.print(f"{e['created_at']}  {e['level']:7}  {e['message']}", markup=False,
                      highlight=False)


def when(value: Any) -> str | None:
    """A datetime as ``YYYY-MM-DD HH:MM``; None stays None."""
    return None if value is None else f"{value:%Y-%m-%d %H:%M}"


def short(text: str | None, width: int = 60) -> str | None:
    """``text`` on one line, cut to ``width`` characters (an ellipsis marks the cut)."""
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def score_rows(summary: Any) -> list[list[Any]]:
    """Table rows of an evaluation's scores (an ``Evaluation`` or ``EvaluationSummary``):
    ``[metric, base, adapter, adapter - base]``, each in [0, 1]."""
    return [[f"{x.metric}", f"{x.base:.3f}", f"{x.adapter:.3f}", f"{x.adapter - x.base:+.3f}"]
            for x in summary.scores]

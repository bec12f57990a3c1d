"""The skeleton of a Ray job's driver, ``python -m train_jobs.run`` or ``python -m
batch_jobs.run``: :class:`Driver` parses ``(--config FILE | --<row>-id ID) [--address
ADDR]``, connects Ray and the catalog, checks the driver's credential
(:mod:`ray_jobs.credentials`), turns Ray's SIGTERM (``ray job stop``) into
:class:`Cancelled`, and maps the run's end to the exit code; each job package supplies
how a row is registered from a spec file and how it runs. :func:`load_spec` reads such a
spec file and names the line and field of each problem.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, TypeVar

import ray
import yaml
from pydantic import BaseModel, ValidationError

from catalog.errors import InvalidArgument, InvalidTransition
from catalog.port import CatalogPort
from ray_jobs import credentials

M = TypeVar("M", bound=BaseModel)


class Cancelled(BaseException):
    """Raised in the driver when its row is cancelled: Ray stops the job (SIGTERM from
    ``stop_job``), or the driver finds the row cancelling."""


def submission_id() -> str | None:
    """This driver's Ray job submission id (``ray job submit`` sets it), or None."""
    config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    return (config.get("metadata") or {}).get("job_submission_id")


class Driver:
    """A driver's ``main()`` (:meth:`main`); a subclass names its row and fills in
    :meth:`register` and :meth:`run` (and may add options, :meth:`add_arguments`).

    Attributes:
        noun: what a row is called in log lines ("job", "batch").
        id_option: the option naming a row to run (``--job-id``); its value is the row's id.
        config_help, id_help: the help of ``--config`` and of :attr:`id_option`.
        refused: exceptions that refuse the start (exit 2), logged by their message.
    """

    noun: str
    id_option: str
    config_help: str
    id_help: str
    refused: tuple[type[BaseException], ...] = (InvalidArgument, InvalidTransition)

    def __init__(self, description: str, log: logging.Logger):
        self.description = description
        self.log = log
        #: (catalog, row id) once known: what a SIGTERM cancels (:meth:`stopping`)
        self.running: tuple[CatalogPort, str] | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this driver's own options (none by default)."""

    def prepare(self, args: argparse.Namespace) -> None:
        """Read this driver's own options before anything is registered or run; may raise
        one of :attr:`refused`."""

    def register(self, cat: CatalogPort, args: argparse.Namespace, secret: str | None,
                 variable: str) -> str:
        """Register the row of ``args.config`` for the user of ``secret`` (read from the
        environment variable ``variable``); return its id."""
        raise NotImplementedError

    def run(self, cat: CatalogPort, row_id: str, args: argparse.Namespace) -> int:
        """Run the row to its end, log the outcome and return the exit code."""
        raise NotImplementedError

    def stopping(self, cat: CatalogPort, row_id: str) -> None:
        """Called by the SIGTERM handler before :class:`Cancelled` unwinds the main
        thread (nothing by default)."""

    def _on_sigterm(self, signum, frame):
        """Ray stops a job with SIGTERM (``ray job stop``), then SIGKILL after
        ``RAY_JOB_STOP_WAIT_TIME_S``: :meth:`stopping`, then unwind the main thread."""
        if self.running is not None:
            self.stopping(*self.running)
        raise Cancelled(f"the {self.noun} was stopped (SIGTERM)")

    def main(self, argv: list[str] | None = None) -> int:
        """Parse ``argv``, connect, check the credential, register (``--config``) or
        check the row bound to the job token (:attr:`id_option`), run.

        Returns the exit code: :meth:`run`'s; 2 on a refused start (bad spec, row
        already run, a job token that is not valid or not this row's); 130 when
        cancelled before :meth:`run` returned; 1 on another failure.
        """
        parser = argparse.ArgumentParser(description=self.description)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--config", type=Path, help=self.config_help)
        which.add_argument(self.id_option, dest="row_id", help=self.id_help,
                           metavar=self.id_option.lstrip("-").replace("-", "_").upper())
        self.add_arguments(parser)
        parser.add_argument("--address", default=None,
                            help="Ray address (default: RAY_ADDRESS, set by `ray job submit`)")
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(message)s")
        ray.init(address=args.address, namespace="garden", log_to_driver=True)
        # after ray.init, which installs its own SIGTERM handler (sys.exit) over any earlier
        signal.signal(signal.SIGTERM, self._on_sigterm)
        from catalog.actor import Catalog

        cat = Catalog()
        row_id = args.row_id
        try:
            self.prepare(args)
            if args.config is not None:
                variable, secret = credentials.credential()
                row_id = self.register(cat, args, secret, variable)
            else:
                credentials.check_bound(cat, row_id)
            self.running = (cat, row_id)
            return self.run(cat, row_id, args)
        except self.refused as exc:
            self.log.error("refused: %s", getattr(exc, "message", exc))
            return 2
        except Cancelled:
            self.log.warning("%s %s cancelled", self.noun, row_id)
            return 130
        except Exception:
            self.log.exception("%s %s failed", self.noun, row_id)
            return 1


class SpecError(InvalidArgument):
    """A spec file that is not valid; the message names the file, the line and the field
    of the first problem, ``details`` lists ``{"line", "field", "message"}`` per problem."""


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) \
                and key < len(node.value):
            node = node.value[key]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def load_spec(path: Path, model: type[M], what: str, error: type[SpecError]) -> M:
    """Read a ``model`` from a YAML or JSON file (a ``what`` spec: "job", "batch").

    Raises:
        error: unreadable (``field`` config) or invalid (the first problem's ``field``).
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read the {what} spec: {exc}", field="config") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} spec is a mapping of {model.__name__} fields",
                    field="config")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [{"line": _line_of(root, tuple(e["loc"])),
                     "field": ".".join(str(p) for p in e["loc"]) or "config",
                     "message": e["msg"]} for e in exc.errors()]
        first = problems[0]
        raise error(
            f"{path}, line {first['line']}, field {first['field']!r}: {first['message']}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            field=str(first["field"]), details=problems) from exc

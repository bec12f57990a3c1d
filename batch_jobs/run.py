"""Entry point of a batch inference job, what ``ray job submit`` runs.

Two ways in:

- ``python -m batch_jobs.run --config batch.yaml``: a :class:`BatchJobSpec` as YAML or
  JSON (``input_file``: a dataset id, or a local JSONL path registered here as an
  ``openai_batch`` dataset; ``endpoint``; ``metadata``; an optional default ``model``;
  ``engine`` settings). The batch is created in the catalog under this Ray job's
  submission id, for the user of the job token in ``GARDEN_JOB_TOKEN`` (runtime
  environment; never logged), which it binds to this batch (:mod:`ray_jobs.credentials`;
  ``GARDEN_API_KEY`` is read when no token is set), then run.
- ``python -m batch_jobs.run --batch-id ID``: a batch the gateway created and submitted,
  with a job token bound to it in ``GARDEN_JOB_TOKEN``.

Either way the batch is claimed atomically (``validating -> in_progress``): a batch runs
at most once. The input lines are read with Ray Data (``read_text``), each checked with
vLLM's protocol models (:mod:`batch_jobs.lines`; a bad line goes to the error file, the
rest run), their models resolved in the catalog (:mod:`batch_jobs.models`), and the
runnable lines go through one Ray Data LLM processor (:mod:`batch_jobs.engine`). Answers
stream back to this driver, which appends output and error lines, records one usage row
per answered line (id ``<batch id>:<custom_id>``, so a retried write counts once) with
its token-proportional share of the energy codecarbon measured (:mod:`batch_jobs.carbon`),
updates ``request_counts`` and checks for cancellation every :data:`CHUNK_LINES` lines.
Both files are registered as ``openai_batch_output`` datasets and the batch ends
``completed``; ``cancelled`` (the route moved it to ``cancelling`` or the Ray job was
stopped: SIGTERM) with the lines done so far; or ``failed`` with ``errors``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batch_jobs import lines as ln
from batch_jobs.carbon import BatchEnergy, share
from batch_jobs.engine import EngineSettings, build_processor
from batch_jobs.models import find_base, local_path, resolve
from catalog import schemas as s
from catalog import storage
from catalog.config import ADMIN_USER
from catalog.errors import InvalidArgument, InvalidTransition, NotFound
from catalog.lifecycle import TERMINAL_BATCH_STATUSES
from catalog.model_names import Target, UnknownModel
from catalog.port import CatalogPort
from ray_jobs import credentials
from ray_jobs.driver import Cancelled, Driver, SpecError, load_spec, submission_id

log = logging.getLogger("batch_jobs.run")
#: Lines between two catalog updates (counts, usage rows, the cancellation check).
CHUNK_LINES = 32
#: Longest a catalog update waits while lines keep arriving, s.
CHUNK_SECONDS = 10.0
#: Most characters of an error message kept on the batch.
MAX_ERROR_CHARS = 4000
#: The most characters of a usage id (``UsageCreate.id``).
MAX_USAGE_ID = 64
B = s.BatchStatus


def usage_id(batch_id: str, custom_id: str) -> str:
    """``<batch id>:<custom_id>``; past 64 characters the custom_id part is its SHA-256
    prefix, so the id stays unique per line and a retried write is still skipped."""
    plain = f"{batch_id}:{custom_id}"
    if len(plain) <= MAX_USAGE_ID:
        return plain
    digest = hashlib.sha256(custom_id.encode()).hexdigest()
    return f"{batch_id}:{digest[:MAX_USAGE_ID - len(batch_id) - 1]}"


# --------------------------------------------------------------------------- Ray Data UDFs


def _parse_row(text: str, endpoint: str, max_tokens: int) -> dict[str, Any]:
    """One input line -> ``{"custom_id", "model_ref", "request", "error"}``; ``request``
    (a valid line) and ``error`` (an error line) are JSON text, the other "", so every
    block has one Arrow schema."""
    try:
        req = ln.parse_line(text, endpoint, max_tokens=max_tokens)
    except ln.LineError as exc:
        return {"custom_id": ln.custom_id_of(text) or "", "model_ref": "", "request": "",
                "error": json.dumps(ln.error_line(ln.custom_id_of(text), exc))}
    payload = {"messages": req.messages, "prompt": req.prompt,
               "sampling_params": req.sampling_params}
    return {"custom_id": req.custom_id, "model_ref": req.model_ref or "",
            "request": json.dumps(payload), "error": ""}


class _ParseLines:
    """Ray Data ``map_batches`` UDF (an actor: vLLM's protocol models are imported once)
    checking a batch of input lines (``{"text"}``) with :func:`_parse_row`."""

    def __init__(self, endpoint: str, max_tokens: int):
        import vllm.entrypoints.openai.chat_completion.protocol  # noqa: F401  (warm-up)

        self.endpoint, self.max_tokens = endpoint, max_tokens

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = [_parse_row(str(text), self.endpoint, self.max_tokens)
                for text in batch["text"]]
        return {key: [row[key] for row in rows]
                for key in ("custom_id", "model_ref", "request", "error")}


@dataclass
class _Preprocess:
    """Processor preprocess: a parsed line -> the engine's columns (``model``: the base or
    adapter folder, ``messages`` or ``prompt``, ``sampling_params``)."""

    paths: dict[str, str]

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        payload = json.loads(row["request"])
        out = {"model": self.paths[row["model_ref"]],
               "sampling_params": payload["sampling_params"],
               "max_tokens": payload["sampling_params"]["max_tokens"]}
        if payload["messages"] is not None:
            out["messages"] = payload["messages"]
        else:
            out["prompt"] = payload["prompt"]
        return out


def _postprocess(row: dict[str, Any]) -> dict[str, Any]:
    """Processor postprocess: keep what an output line and a usage row need."""
    return {"custom_id": row["custom_id"], "model_ref": row["model_ref"],
            "text": row.get("generated_text") or "",
            "prompt_tokens": int(row.get("num_input_tokens") or 0),
            "completion_tokens": int(row.get("num_generated_tokens") or 0),
            "max_tokens": int(row["max_tokens"]),
            "latency_s": float(row.get("time_taken_llm") or 0.0),
            "error": str(row.get("__inference_error__") or "")}


# --------------------------------------------------------------------------- the run


class BatchRun:
    """One batch from claim to terminal status (see the module docstring).

    Args:
        cat: the catalog. batch: the claimed batch (in_progress).
        settings: the engine's settings. default_model: ``model`` of lines without one.
        work_dir: where the output and error files are written before they are stored.
        country_iso_code: grid whose carbon intensity prices the energy.
    """

    def __init__(self, cat: CatalogPort, batch: s.Batch, settings: EngineSettings,
                 default_model: str | None, work_dir: Path, country_iso_code: str = "FRA"):
        self.cat, self.batch, self.settings = cat, batch, settings
        self.default_model = default_model
        self.endpoint = str(batch.endpoint)
        self.out_path = work_dir / f"{batch.id}_output.jsonl"
        self.err_path = work_dir / f"{batch.id}_error.jsonl"
        self._out = self.out_path.open("w", encoding="utf-8")
        self._err = self.err_path.open("w", encoding="utf-8")
        self.completed = self.failed = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.energy = BatchEnergy(batch.id, country_iso_code)
        self._accounted = (0.0, 0.0)  # energy, emissions already shared over lines
        self._pending: list[dict[str, Any]] = []
        self._targets: dict[str, Target] = {}
        self._last_update = time.monotonic()

    # ------------------------------------------------------------- lines out

    def _write_error(self, line: dict[str, Any]) -> None:
        self._err.write(json.dumps(line) + "\n")
        self.failed += 1

    def _write_answer(self, row: dict[str, Any]) -> None:
        target = self._targets[row["model_ref"]]
        if row["error"]:
            self._write_error(ln.error_line(row["custom_id"], ln.LineError(
                row["error"], code="engine_error", status_code=500)))
            return
        self._out.write(json.dumps(ln.output_line(
            row["custom_id"], self.endpoint, target.served_name, row["text"],
            prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
            finish_reason=ln.finish_reason(row["completion_tokens"], row["max_tokens"]))) + "\n")
        self.completed += 1
        self.prompt_tokens += row["prompt_tokens"]
        self.completion_tokens += row["completion_tokens"]
        model = target.adapter or target.base
        self._pending.append({
            "id": usage_id(self.batch.id, row["custom_id"]), "model": target.base.name,
            "adapter": target.served_name if target.adapter else None,
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "latency_ms": max(row["latency_s"], 0.0) * 1000.0,
            "details": {"route": "batch", "batch_id": self.batch.id,
                        "custom_id": row["custom_id"], "endpoint": self.endpoint},
            "user_id": self.batch.user_id, "model_id": model.id,
            "api_key_id": self.batch.api_key_id, "created_at": datetime.now(UTC)})

    # ------------------------------------------------------------- catalog updates

    def flush(self, *, check_cancel: bool = True) -> None:
        """Write pending usage rows (with their share of the energy measured since the
        last flush), the counts and token totals; raise Cancelled when the batch
        was moved to cancelling."""
        self._out.flush()
        self._err.flush()
        reading = self.energy.read()
        if self._pending:
            kwh = max(reading.energy_kwh - self._accounted[0], 0.0)
            kg = max(reading.emissions_kg - self._accounted[1], 0.0)
            weights = [r["prompt_tokens"] + r["completion_tokens"] for r in self._pending]
            records = [s.UsageCreate(**r, energy_kwh=e, emissions_kg=c) for r, e, c in zip(
                self._pending, share(kwh, weights), share(kg, weights), strict=True)]
            self.cat.record_usage(records)
            self._accounted = (reading.energy_kwh, reading.emissions_kg)
            self._pending = []
        current = self.cat.batches.update(
            self.batch.id, request_completed=self.completed, request_failed=self.failed,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            energy_kwh=reading.energy_kwh, emissions_kg=reading.emissions_kg)
        self._last_update = time.monotonic()
        if check_cancel and current.status == B.cancelling:
            raise Cancelled("the batch was cancelled")

    def _maybe_flush(self) -> None:
        done = self.completed + self.failed
        if len(self._pending) >= CHUNK_LINES or (
                done and time.monotonic() - self._last_update >= CHUNK_SECONDS):
            self.flush()

    # ------------------------------------------------------------- the work

    def _choose_base(self, counts: Counter[str]) -> s.Model | None:
        """The base model of the batch: that of its most frequent resolvable line model
        (lines without one count for ``default_model``); None when none resolves."""
        named = Counter({(ref or self.default_model): n for ref, n in counts.items()
                         if ref or self.default_model})
        for ref, _ in named.most_common():
            try:
                return find_base(self.cat, str(ref))
            except UnknownModel:
                continue
        return None

    def run(self) -> None:
        """Read, check, run and write every line; updates the catalog as it goes."""
        self.energy.start()
        source = self.cat.datasets.get(self.batch.input_file_id)
        data = ray.data.read_text(source.path).filter(lambda r: bool(r["text"].strip()))
        parsed = data.map_batches(_ParseLines, fn_constructor_kwargs={
            "endpoint": self.endpoint, "max_tokens": self.settings.default_max_tokens},
            concurrency=1, batch_size=1024).materialize()
        for row in parsed.filter(lambda r: r["error"] != "").iter_rows():
            self._write_error(json.loads(row["error"]))
        ok = parsed.filter(lambda r: r["error"] == "")
        counts = Counter({r["model_ref"]: int(r["count()"])
                          for r in ok.groupby("model_ref").count().take_all()})
        self.cat.add_batch_event(self.batch.id, s.JobEvent(message=(
            f"{sum(counts.values())} lines to run, {self.failed} refused; models: "
            + ", ".join(f"{ref or '(none)'} x{n}" for ref, n in counts.most_common()))))
        base = self._choose_base(counts)
        base_path = local_path(base) if base is not None else ""
        paths: dict[str, str] = {}
        for ref in counts:
            if base is None:
                self._refuse_model(ok, ref, f"The model `{ref}` does not exist." if ref
                                   else "body.model is required")
                continue
            try:
                target = resolve(self.cat, base, ref or self.default_model)
            except UnknownModel as exc:
                self._refuse_model(ok, ref, str(exc))
                continue
            self._targets[ref] = target
            paths[ref] = local_path(target.adapter) if target.adapter else base_path
        self.flush()
        if base is None or not paths:
            return
        # blocks of one engine batch each: answers stream back block by block, so counts,
        # usage rows and the cancellation check advance while the batch runs
        runnable = ok.filter(lambda r, known=frozenset(paths): r["model_ref"] in known) \
            .repartition(target_num_rows_per_block=self.settings.batch_size)
        processor = build_processor(
            base_path, self.endpoint == s.BatchEndpoint.chat_completions, self.settings,
            _Preprocess(paths), _postprocess)
        for row in processor(runnable).iter_rows():
            self._write_answer(row)
            self._maybe_flush()
        self.flush()

    def _refuse_model(self, ok: Any, ref: str, message: str) -> None:
        for row in ok.filter(lambda r, ref=ref: r["model_ref"] == ref).iter_rows():
            self._write_error(ln.error_line(row["custom_id"], ln.LineError(
                message, code="model_not_found", status_code=404, param="model")))

    # ------------------------------------------------------------- the end

    def finish(self, status: s.BatchStatus, errors: s.BatchErrors | None = None,
               message: str | None = None) -> s.Batch:
        """Store and register the files, write the last usage rows and move the batch to
        ``status`` (through finalizing or cancelling as the lifecycle asks). A batch
        another process already ended is returned as it is."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish even while being stopped
        try:
            self.flush(check_cancel=False)
        except Exception as exc:  # the files still get stored and the status set
            log.warning("last catalog update failed: %s", exc)
        self.energy.stop()
        self._out.close()
        self._err.close()
        current = self.cat.batches.get(self.batch.id)
        if current.status in TERMINAL_BATCH_STATUSES:
            return current
        if status == B.completed:
            current = self.cat.transition_batch(self.batch.id, B.finalizing)
        elif status == B.cancelled and current.status != B.cancelling:
            current = self.cat.transition_batch(self.batch.id, B.cancelling)
        if current.status == B.cancelling and status == B.completed:
            status = B.cancelled  # cancelled while the last lines ran
        fields: dict[str, Any] = {}
        if self.completed:
            fields["output_file_id"] = self._register(self.out_path, "output", self.completed)
        if self.failed:
            fields["error_file_id"] = self._register(self.err_path, "error", self.failed)
        if errors is not None:
            fields["errors"] = errors
        try:
            return self.cat.transition_batch(self.batch.id, status, message=message, **fields)
        except InvalidTransition:  # another process ended it meanwhile
            return self.cat.batches.get(self.batch.id)

    def _register(self, path: Path, kind: str, rows: int) -> str:
        name = f"{self.batch.id}_{kind}"
        version = self.cat.next_version("datasets", name)
        dest = storage.location("datasets", name, storage.fresh(f"v{version}"), path.name)
        storage.put(path, dest)
        return self.cat.datasets.create(s.DatasetCreate(
            name=name, version=version, format=s.DatasetFormat.openai_batch_output, path=dest,
            num_rows=rows, size_bytes=path.stat().st_size, user_id=self.batch.user_id,
            source=f"batch {self.batch.id}",
            description=f"{kind} lines of batch {self.batch.id}")).id


def run_batch(batch_id: str, cat: CatalogPort | None = None, *, ray_job_id: str | None = None,
              settings: EngineSettings | None = None, default_model: str | None = None,
              country_iso_code: str = "FRA") -> s.Batch:
    """Run one catalog batch to a terminal status and return it.

    Needs a connected Ray. ``cat`` defaults to :class:`catalog.actor.Catalog`;
    ``ray_job_id`` (default: this driver's submission id) must be the batch's own.

    Raises:
        InvalidTransition: the batch already ran or runs, or belongs to another Ray job;
            nothing is run. A batch cancelled before it started ends cancelled and is
            returned.
    """
    from catalog.actor import Catalog

    cat = cat or Catalog()
    try:
        batch = cat.claim_batch(batch_id, ray_job_id or submission_id())
    except InvalidTransition:
        current = cat.batches.get(batch_id)
        if current.status == B.cancelling:
            return cat.transition_batch(batch_id, B.cancelled,
                                        message="cancelled before it started")
        raise
    with tempfile.TemporaryDirectory(prefix=f"garden-{batch_id}-") as work_dir:
        run = BatchRun(cat, batch, settings or EngineSettings(), default_model,
                       Path(work_dir), country_iso_code)
        try:
            run.run()
        except Cancelled as exc:
            log.warning("batch %s: %s", batch_id, exc)
            return run.finish(B.cancelled, message=f"{run.completed} lines answered")
        except SystemExit as exc:
            if exc.code != signal.SIGTERM:  # Ray's own SIGTERM handler: sys.exit(15)
                raise
            log.warning("batch %s: stopped (SIGTERM)", batch_id)
            return run.finish(B.cancelled, message=f"{run.completed} lines answered")
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            log.exception("batch %s failed", batch_id)
            code = getattr(exc, "code", None) or "batch_failed"
            run.finish(B.failed, s.BatchErrors(data=[s.BatchError(
                code=str(code), message=message, param=getattr(exc, "field", None))]),
                message=message)
            raise
        return run.finish(B.completed)


# --------------------------------------------------------------------------- --config


class BatchJobSpec(BaseModel):
    """A batch described in a file (``--config``): what ``POST /v1/batches`` takes, with
    the input file by dataset id or local path, and how to run it."""

    model_config = ConfigDict(extra="forbid")

    input_file: str = Field(
        min_length=1, description="Dataset id of the request lines (format openai_batch), "
        "or a local JSONL file of them (registered as a dataset first; a relative path is "
        "relative to the spec file).")
    endpoint: s.BatchEndpoint = Field(description="/v1/chat/completions or /v1/completions.")
    completion_window: str = Field("24h", pattern="^24h$", description="Only 24h.")
    metadata: dict[str, str] | None = Field(None, description="Up to 16 key/value pairs.")
    model: str | None = Field(
        None, description="Model of the lines whose body names none: a base model or an "
        "adapter, by name or id.")
    country_iso_code: str = Field("FRA", min_length=3, max_length=3,
                                  description="Grid whose carbon intensity prices energy.")
    engine: EngineSettings = Field(default_factory=EngineSettings,
                                   description="Engine and processor settings.")
    user_id: str | None = Field(None, description="Owner, when the admin key files it.")


class BatchSpecError(SpecError):
    """A spec file that is not a valid :class:`BatchJobSpec`; the message names the file,
    the line and the field."""


def load_batch_spec(path: Path) -> BatchJobSpec:
    """Read a :class:`BatchJobSpec` from YAML or JSON. Raises BatchSpecError naming the
    file, line and field of the first problem (``details``: every problem)."""
    return load_spec(path, BatchJobSpec, "batch", BatchSpecError)


def register_input(cat: CatalogPort, path: Path, user_id: str | None) -> s.Dataset:
    """Store a local JSONL file of request lines and register it (format
    ``openai_batch``); each line's body is checked when the batch runs.

    Raises:
        InvalidArgument: no such file, or a line that is not a JSON object with a
            ``custom_id`` (the message names the file and line).
    """
    if not path.is_file():
        raise InvalidArgument(f"{path}: no such file", field="input_file")
    rows = 0
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            if ln.custom_id_of(text) is None:
                raise InvalidArgument(
                    f"{path}, line {number}, field 'custom_id': a request line is a JSON "
                    "object with a string custom_id", field="input_file")
            rows += 1
    name = path.stem
    version = cat.next_version("datasets", name)
    dest = storage.location("datasets", storage.safe_name(name), storage.fresh(f"v{version}"),
                            "data.jsonl")
    storage.put(path, dest)
    return cat.datasets.create(s.DatasetCreate(
        name=name, version=version, format=s.DatasetFormat.openai_batch, path=dest,
        num_rows=rows, size_bytes=path.stat().st_size, source=str(path), user_id=user_id))


def create_batch_from_spec(cat: CatalogPort, path: Path, spec: BatchJobSpec,
                           secret: str | None,
                           variable: str = credentials.JOB_TOKEN_ENV) -> s.Batch:
    """Register the batch of a spec file (and its input file, when a path), owned by the
    user of ``secret`` (a job token, bound to the batch in the same transaction, or an API
    key; the bootstrap admin key files it for ``user_id`` or the admin).

    Raises:
        InvalidArgument: an unknown, expired or revoked ``secret``, or a job token that
            already registered a job (``field`` ``variable``, the environment variable it
            came from), or an unknown input file.
    """
    user_id, key = None, None
    if secret:
        key = credentials.filer(cat, secret, variable)
        user_id = key.user_id if key is not None else spec.user_id or ADMIN_USER
    try:
        data = cat.datasets.get(spec.input_file)
    except NotFound:
        local = Path(spec.input_file)
        data = register_input(cat, local if local.is_absolute() else path.parent / local,
                              user_id)
    with credentials.naming(variable):
        return cat.create_batch(
            s.BatchCreate(input_file_id=data.id, endpoint=spec.endpoint,
                          metadata=spec.metadata),
            user_id=user_id, api_key_id=key.id if key is not None else None,
            ray_job_id=submission_id(), job_token_id=credentials.job_token_id(key))


class BatchDriver(Driver):
    """``python -m batch_jobs.run (--config FILE | --batch-id ID) [--engine JSON]
    [--address ADDR]``.

    Exit 0 when the batch completed, 1 on failure, 2 on a refused start (bad spec, batch
    already run, a job token that is not valid or not this batch's), 130 when cancelled.
    """

    noun, id_option = "batch", "--batch-id"
    config_help = "a BatchJobSpec as YAML or JSON: create the batch, then run it"
    id_help = "run this catalog batch (created by the gateway)"
    refused = (InvalidArgument, InvalidTransition, ValidationError)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--engine", default=None,
                            help="EngineSettings as JSON (default: EngineSettings())")

    def prepare(self, args: argparse.Namespace) -> None:
        self.settings = (EngineSettings.model_validate_json(args.engine) if args.engine
                         else None)
        self.default_model: str | None = None
        self.country = "FRA"

    def register(self, cat: CatalogPort, args: argparse.Namespace, secret: str | None,
                 variable: str) -> str:
        spec = load_batch_spec(args.config)
        self.settings = self.settings or spec.engine
        self.default_model, self.country = spec.model, spec.country_iso_code
        batch_id = create_batch_from_spec(cat, args.config, spec, secret, variable).id
        log.info("created batch %s from %s", batch_id, args.config)
        return batch_id

    def run(self, cat: CatalogPort, row_id: str, args: argparse.Namespace) -> int:
        batch = run_batch(row_id, cat, settings=self.settings,
                          default_model=self.default_model, country_iso_code=self.country)
        log.info("batch %s %s: %s", batch.id, batch.status, batch.request_counts)
        return 130 if batch.status == B.cancelled else 0 if batch.status == B.completed else 1


def main(argv: list[str] | None = None) -> int:
    """CLI: see :class:`BatchDriver`."""
    return BatchDriver(__doc__.splitlines()[0], log).main(argv)


if __name__ == "__main__":
    sys.exit(main())

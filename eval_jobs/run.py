"""Run an evaluation: the base model and the adapter answer the same eval prompts, and
both are scored against the references (:mod:`eval_jobs.scoring`).

The answers come from vLLM through a batch (:func:`batch_jobs.run.run_batch`: one Ray
Data LLM processor on the base model with the adapter loaded as a LoRA, greedy, at most
``max_tokens``), so they are billed, measured for energy and kept as a batch's output
file like any batch's. Its lines are ``base-<i>`` and ``adapter-<i>`` for the eval set's
first ``n`` rows: the prompt is a chat row's turns before its last (assistant) turn,
whose text is the reference; a preference row's prompt and its chosen reply.

Two ways in:

- ``python -m eval_jobs.run --evaluation-id ID``: an evaluation the gateway created and
  submitted (``POST /v1/models/{id}/evaluations``), with a job token bound to it in
  ``GARDEN_JOB_TOKEN``;
- :func:`run_evaluation` from another driver: a training job with an eval set ends with
  one (``train_jobs.run``), in its own Ray job.

The evaluation moves ``pending -> running`` when it starts (claimed by its Ray job), and
ends ``completed`` with its scores, which are also written on the adapter and the
training job, or ``failed`` with the error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog import schemas as s
from catalog import storage
from catalog.port import CatalogPort
from eval_jobs.scoring import METRICS, score
from ray_jobs.driver import Driver, submission_id

log = logging.getLogger("eval_jobs.run")
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class Example:
    """One eval prompt (chat messages) and its reference answer."""

    messages: list[dict[str, Any]]
    reference: str


def read_examples(path: str, fmt: str, n: int) -> list[Example]:
    """The first ``n`` usable rows of a dataset file (JSONL, validated at upload) as
    :class:`Example`: a chat whose last turn is the assistant's, or a preference pair
    (its chosen reply is the reference). Rows of another shape are skipped."""
    from corpora.formats import to_record

    found: list[Example] = []
    with open(storage.local_copy(path), encoding="utf-8") as fh:
        for line in fh:
            if len(found) == n:
                break
            if not line.strip():
                continue
            record = to_record(json.loads(line), fmt)
            if "chosen" in record:
                messages, reply = record["prompt"], record["chosen"][-1]
            else:
                messages, reply = record["messages"][:-1], record["messages"][-1]
            if messages and reply.get("role") == "assistant" and reply.get("content"):
                found.append(Example(list(messages), str(reply["content"])))
    return found


def request_lines(examples: list[Example], base: s.Model, adapter: s.Model,
                  max_tokens: int) -> list[dict[str, Any]]:
    """The batch's request lines: ``base-<i>`` and ``adapter-<i>`` per example (chat
    completions, temperature 0, ``max_tokens``)."""
    out = []
    for i, example in enumerate(examples):
        for who, model in (("base", base), ("adapter", adapter)):
            out.append({"custom_id": f"{who}-{i}", "method": "POST",
                        "url": str(s.BatchEndpoint.chat_completions),
                        "body": {"model": model.id, "messages": example.messages,
                                 "max_tokens": max_tokens, "temperature": 0}})
    return out


def read_answers(cat: CatalogPort, batch: s.Batch) -> dict[str, str]:
    """The answered lines of a finished batch's output file: ``{custom_id: text}``."""
    if not batch.output_file_id:
        return {}
    output = cat.datasets.get(batch.output_file_id)
    answers: dict[str, str] = {}
    with open(storage.local_copy(output.path), encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                choice = row["response"]["body"]["choices"][0]
                answers[row["custom_id"]] = choice["message"]["content"] or ""
    return answers


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The last user turn of a prompt (what an example shows)."""
    users = [m for m in messages if m.get("role") == "user"]
    return str((users or messages)[-1].get("content") or "")


def run_evaluation(evaluation_id: str, cat: CatalogPort | None = None,
                   ray_job_id: str | None = None, country_iso_code: str = "FRA") -> s.Evaluation:
    """Run one pending evaluation to its end and return it.

    Needs a connected Ray. ``cat`` defaults to :class:`catalog.actor.Catalog`;
    ``ray_job_id`` (default: this driver's submission id) claims it;
    ``country_iso_code`` prices the batch's energy (3-letter ISO code).

    Raises:
        InvalidTransition: it already ran or runs (nothing is run). Anything else is
            recorded on the evaluation (failed) and re-raised: a dataset file with no
            usable row (ValueError), a batch that failed (RuntimeError).
    """
    from batch_jobs.run import register_input, run_batch
    from catalog.actor import Catalog

    cat = cat or Catalog()
    ray_job_id = ray_job_id or submission_id()
    evaluation = cat.start_evaluation(evaluation_id, ray_job_id)
    try:
        adapter = cat.models.get(evaluation.model_id)
        base = cat.models.get(evaluation.base_model_id)
        data = cat.datasets.get(evaluation.dataset_id)
        examples = read_examples(data.path, str(data.format), evaluation.n)
        if not examples:
            raise ValueError(f"dataset {data.id} has no row with a prompt and an assistant "
                             "reply to evaluate on")
        with tempfile.TemporaryDirectory(prefix=f"garden-{evaluation_id}-") as tmp:
            path = Path(tmp) / f"evaluation-{evaluation_id}.jsonl"
            path.write_text("".join(json.dumps(line) + "\n" for line in request_lines(
                examples, base, adapter, evaluation.max_tokens)))
            requests = register_input(cat, path, evaluation.user_id)
        batch = cat.create_batch(
            s.BatchCreate(input_file_id=requests.id, endpoint=s.BatchEndpoint.chat_completions,
                          metadata={"evaluation_id": evaluation_id}),
            user_id=evaluation.user_id, ray_job_id=ray_job_id)
        cat.evaluations.update(evaluation_id, batch_id=batch.id)
        log.info("evaluation %s: %d examples through batch %s", evaluation_id, len(examples),
                 batch.id)
        batch = run_batch(batch.id, cat, ray_job_id=ray_job_id,
                          country_iso_code=country_iso_code)
        if batch.status != s.BatchStatus.completed:
            raise RuntimeError(f"batch {batch.id} ended {batch.status}")
        answers = read_answers(cat, batch)
        both = [i for i in range(len(examples))
                if f"base-{i}" in answers and f"adapter-{i}" in answers]
        if not both:
            raise RuntimeError(f"batch {batch.id} answered no example with both models")
        references = [examples[i].reference for i in both]
        base_scores = score([answers[f"base-{i}"] for i in both], references)
        adapter_scores = score([answers[f"adapter-{i}"] for i in both], references)
        scores = [s.EvaluationScore(metric=m, base=base_scores[m], adapter=adapter_scores[m])
                  for m in METRICS]
        kept = [s.EvaluationExample(prompt=prompt_text(examples[i].messages),
                                    reference=examples[i].reference,
                                    base=answers[f"base-{i}"], adapter=answers[f"adapter-{i}"])
                for i in both[:s.KEPT_EXAMPLES]]
        done = cat.complete_evaluation(evaluation_id, scores, kept, n=len(both))
        log.info("evaluation %s: %s", evaluation_id, ", ".join(
            f"{x.metric} base {x.base:.3f} adapter {x.adapter:.3f}" for x in scores))
        return done
    except BaseException as exc:
        log.exception("evaluation %s failed", evaluation_id)
        cat.fail_evaluation(evaluation_id, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
        raise


class EvaluationDriver(Driver):
    """``python -m eval_jobs.run --evaluation-id ID [--address ADDR]``.

    Exit 0 when the evaluation completed, 1 on failure, 2 on a refused start (already
    run, a job token that is not this evaluation's).
    """

    noun, id_option = "evaluation", "--evaluation-id"
    config_help = "(not supported: evaluations are created by POST /v1/models/{id}/evaluations)"
    id_help = "run this catalog evaluation (created by the gateway)"

    def register(self, cat: CatalogPort, args: argparse.Namespace, secret: str | None,
                 variable: str) -> str:
        from catalog.errors import InvalidArgument

        raise InvalidArgument("an evaluation is created by POST /v1/models/{id}/evaluations "
                              "(or `garden models evaluate`), then run by id",
                              field="config")

    def run(self, cat: CatalogPort, row_id: str, args: argparse.Namespace) -> int:
        evaluation = run_evaluation(row_id, cat)
        log.info("evaluation %s %s", evaluation.id, evaluation.status)
        return 0


def main(argv: list[str] | None = None) -> int:
    """CLI: see :class:`EvaluationDriver`."""
    return EvaluationDriver(__doc__.splitlines()[0], log).main(argv)


if __name__ == "__main__":
    sys.exit(main())

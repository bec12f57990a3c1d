"""Evaluations in the store, on SQLite and PostgreSQL: what may be evaluated on what,
the lifecycle, and the summary a completed one leaves on the adapter and its job."""

from __future__ import annotations

import pytest

from catalog import schemas as s
from catalog.errors import InvalidArgument, InvalidTransition
from tests.factories import base_model, dataset, job


def adapter_of(store, base, trained_by=None) -> s.Model:
    return store.register_model(s.ModelCreate(
        name="tuned", kind="adapter", path="/models/tuned", base_model_id=base.id,
        training_job_id=trained_by.id if trained_by else None))


def test_an_evaluation_runs_to_its_scores_on_the_adapter_and_its_job(store):
    base = base_model(store)
    trained = job(store, base=base)
    adapter = adapter_of(store, base, trained)
    data = dataset(store, "eval")
    ev = store.create_evaluation(adapter.id, s.EvaluationCreate(dataset_id=data.id, n=3),
                                 job_id=trained.id)
    assert (ev.status, ev.base_model_id, ev.n, ev.max_tokens) == ("pending", base.id, 3, 64)
    assert store.start_evaluation(ev.id, "raysubmit_1").status == "running"
    assert store.start_evaluation(ev.id, "raysubmit_1").status == "running"  # repeated
    with pytest.raises(InvalidTransition):
        store.start_evaluation(ev.id, "raysubmit_2")  # another Ray job's

    scores = [s.EvaluationScore(metric="rouge_l", base=0.12, adapter=0.31),
              s.EvaluationScore(metric="bleu", base=0.01, adapter=0.05),
              s.EvaluationScore(metric="exact_match", base=0.0, adapter=0.5)]
    examples = [s.EvaluationExample(prompt="Hi", reference="Hello", base="Hey", adapter="Hello")]
    done = store.complete_evaluation(ev.id, scores, examples, n=2)
    assert (done.status, done.n, done.scores, done.examples) == ("completed", 2, scores, examples)
    assert done.completed_at is not None
    summary = s.EvaluationSummary(id=ev.id, dataset_id=data.id, n=2, scores=scores)
    assert store.models.get(adapter.id).evaluation == summary
    assert store.training_jobs.get(trained.id).evaluation == summary
    assert store.models.get(base.id).evaluation is None
    with pytest.raises(InvalidTransition):
        store.complete_evaluation(ev.id, scores, examples, n=2)  # ended
    assert store.fail_evaluation(ev.id, "late").status == "completed"  # ended: kept
    assert [e.id for e in store.evaluations.list(model_id=adapter.id).items] == [ev.id]


def test_what_may_be_evaluated_on_what(store):
    base = base_model(store)
    adapter = adapter_of(store, base)
    chats = dataset(store, "eval")
    batch_file = dataset(store, "requests", format="openai_batch")
    refused = [
        (base.id, chats.id, "model_id", "is a base model"),
        ("mdl_missing", chats.id, "model_id", "not found"),
        (adapter.id, "ds_missing", "dataset_id", "not found"),
        (adapter.id, batch_file.id, "dataset_id", "needs chats or preference pairs"),
    ]
    for model_id, dataset_id, field, message in refused:
        with pytest.raises(InvalidArgument, match=message) as info:
            store.create_evaluation(model_id, s.EvaluationCreate(dataset_id=dataset_id))
        assert info.value.field == field
    assert store.evaluations.list().total == 0  # nothing written by a refusal
    ev = store.create_evaluation(adapter.id, s.EvaluationCreate(dataset_id=chats.id))
    failed = store.fail_evaluation(ev.id, "RuntimeError: the engine died")
    assert (failed.status, failed.error_message) == ("failed", "RuntimeError: the engine died")
    with pytest.raises(InvalidTransition):
        store.start_evaluation(ev.id, None)

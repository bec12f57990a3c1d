"""Batches in the catalog, on SQLite and PostgreSQL: creation checks, the OpenAI lifecycle
with one event per change, idempotent moves, the claim, counts, listing by owner and
status, and the JSON body the ``openai`` client reads."""

from __future__ import annotations

from datetime import timedelta

import openai.types
import pytest

from catalog import schemas as s
from catalog.errors import InvalidArgument, InvalidTransition, NotFound
from tests.factories import dataset


def batch_file(store, name: str = "requests", rows: int = 5) -> s.Dataset:
    return dataset(store, name, rows=rows, format="openai_batch")


def make_batch(store, **fields) -> s.Batch:
    data = fields.pop("data", None) or batch_file(store)
    request = s.BatchCreate(input_file_id=data.id, endpoint="/v1/chat/completions",
                            metadata=fields.pop("metadata", {"project": "faq"}))
    return store.create_batch(request, **fields)


def test_create_batch_counts_lines_and_expires_in_a_day(store):
    b = make_batch(store, user_id="u1", api_key_id="key_1")
    assert b.id.startswith("batch_") and b.object == "batch"
    assert b.status == s.BatchStatus.validating
    assert b.request_counts == s.BatchRequestCounts(total=5, completed=0, failed=0)
    assert b.metadata == {"project": "faq"} and b.completion_window == "24h"
    assert b.expires_at - b.created_at == timedelta(hours=24)
    assert b.user_id == "u1" and b.api_key_id == "key_1"
    assert store.batches.get(b.id) == b
    events = store.list_batch_events(b.id)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert "batch created: 5 lines" in events[0]["message"]


def test_create_batch_refuses_missing_or_non_batch_input(store):
    with pytest.raises(InvalidArgument) as err:
        store.create_batch(s.BatchCreate(input_file_id="ds_missing",
                                         endpoint="/v1/completions"))
    assert err.value.field == "input_file_id"
    chat = dataset(store, "chat")  # format openai: training rows, not request lines
    with pytest.raises(InvalidArgument) as err:
        store.create_batch(s.BatchCreate(input_file_id=chat.id, endpoint="/v1/completions"))
    assert err.value.field == "input_file_id" and "openai_batch" in err.value.message
    assert store.batches.list().total == 0


def test_metadata_limits_follow_openai():
    with pytest.raises(ValueError, match="16 metadata pairs"):
        s.BatchCreate(input_file_id="ds_1", endpoint="/v1/completions",
                      metadata={f"k{i}": "v" for i in range(17)})
    with pytest.raises(ValueError):
        s.BatchCreate(input_file_id="ds_1", endpoint="/v1/embeddings")


def test_lifecycle_stamps_times_logs_events_and_repeats_harmlessly(store):
    b = make_batch(store)
    claimed = store.claim_batch(b.id, "garden-batch-x")
    assert claimed.status == "in_progress" and claimed.ray_job_id == "garden-batch-x"
    assert claimed.in_progress_at is not None
    with pytest.raises(InvalidTransition) as err:
        store.claim_batch(b.id, "garden-batch-x")
    assert err.value.field == "status"
    counted = store.batches.update(b.id, request_completed=4, request_failed=1,
                                   prompt_tokens=100, completion_tokens=20)
    assert counted.request_counts == s.BatchRequestCounts(total=5, completed=4, failed=1)
    assert counted.usage.total_tokens == 120
    store.transition_batch(b.id, "finalizing")
    done = store.transition_batch(b.id, "completed", output_file_id="ds_out",
                                  error_file_id="ds_err", energy_kwh=1e-4)
    again = store.transition_batch(b.id, "completed")
    assert again.status == done.status == "completed"
    assert again.completed_at == done.completed_at and done.finalizing_at is not None
    assert done.output_file_id == "ds_out" and done.energy_kwh == pytest.approx(1e-4)
    messages = [e["message"] for e in store.list_batch_events(b.id)]
    assert messages[1:] == ["status -> in_progress", "status -> finalizing",
                            "status -> completed"]
    after = store.list_batch_events(b.id)[1]["seq"]
    assert [e["message"] for e in store.list_batch_events(b.id, after=after, limit=1)] == [
        "status -> finalizing"]
    with pytest.raises(InvalidTransition):
        store.transition_batch(b.id, "cancelling")


def test_cancel_failure_and_refused_fields(store):
    b = make_batch(store)
    store.claim_batch(b.id, None)
    store.transition_batch(b.id, "cancelling")
    with pytest.raises(InvalidTransition):
        store.transition_batch(b.id, "completed")
    with pytest.raises(InvalidArgument) as err:
        store.transition_batch(b.id, "cancelled", input_file_id="ds_x")
    assert err.value.field == "input_file_id"
    gone = store.transition_batch(b.id, "cancelled", message="3 lines done")
    assert gone.cancelling_at is not None and gone.cancelled_at is not None
    assert store.list_batch_events(b.id)[-1]["message"] == "status -> cancelled: 3 lines done"
    failed = make_batch(store, data=batch_file(store, "other"))
    errors = s.BatchErrors(data=[s.BatchError(code="invalid_input_file", message="empty")])
    out = store.transition_batch(failed.id, "failed", errors=errors)
    assert out.errors == errors and out.failed_at is not None
    assert store.list_batch_events(failed.id)[-1]["level"] == "error"
    with pytest.raises(NotFound):
        store.transition_batch("batch_missing", "failed")


def test_claim_checks_the_ray_job(store):
    b = make_batch(store, ray_job_id="garden-batch-a")
    with pytest.raises(InvalidTransition) as err:
        store.claim_batch(b.id, "raysubmit_other")
    assert err.value.field == "ray_job_id"
    assert store.batches.get(b.id).status == "validating"


def test_list_by_owner_and_status(store):
    data = batch_file(store)
    mine = [make_batch(store, data=data, user_id="u1") for _ in range(3)]
    make_batch(store, data=data, user_id="u2")
    store.claim_batch(mine[0].id, None)
    page = store.batches.list(user_id="u1")
    assert page.total == 3 and {b.id for b in page.items} == {b.id for b in mine}
    assert [b.id for b in store.batches.list(user_id="u1", status="in_progress").items] == [
        mine[0].id]


def test_json_body_parses_with_the_openai_client(store):
    b = make_batch(store)
    store.claim_batch(b.id, None)
    b = store.batches.update(b.id, request_completed=2, prompt_tokens=7, completion_tokens=3)
    body = b.model_dump(mode="json")
    assert isinstance(body["created_at"], int) and isinstance(body["in_progress_at"], int)
    parsed = openai.types.Batch.model_validate(body)
    assert parsed.id == b.id and parsed.status == "in_progress"
    assert parsed.created_at == int(b.created_at.timestamp())
    assert parsed.request_counts.completed == 2 and parsed.usage.total_tokens == 10
    assert parsed.metadata == {"project": "faq"}
    assert s.Batch.model_validate(body).created_at == b.created_at.replace(microsecond=0)

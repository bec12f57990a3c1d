"""``/v1/models/{id}/evaluations`` and ``/v1/evaluations/{id}``: what may be evaluated
by whom, and the Ray job it runs as (``python -m eval_jobs.run``, with a job token bound
to the evaluation).

The Ray job here fails at its first step, reading the eval set, whose file is removed
after the upload: what is proven is the submission, the driver's credential and claim,
and a failure kept on the evaluation. Answers and scores come from the same
``run_evaluation`` where the main job's training job ends with an evaluation
(tests/main_job/test_demo.py), which starts a vLLM engine.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.factories import base_and_adapter
from tests.gateway.fixtures import assert_error
from tests.gateway.test_datasets import upload

pytestmark = pytest.mark.ray


@pytest.fixture
def adapter(catalog_store):
    """Alice's adapter of a published base model."""
    return base_and_adapter(catalog_store)[1]


def test_an_evaluation_runs_as_a_ray_job_and_keeps_its_failure(alice, bob, adapter):
    data = upload(alice, f"eval-{uuid.uuid4().hex[:6]}").json()
    refused = [
        (alice, adapter.base_model_id, {"dataset_id": data["id"]}, 422, "model_id"),
        (alice, adapter.id, {"dataset_id": "ds_missing"}, 422, "dataset_id"),
        (alice, adapter.id, {"dataset_id": data["id"], "n": 0}, 422, "body.n"),
        (bob, adapter.id, {"dataset_id": data["id"]}, 403, None),
    ]
    for client, model_id, body, status, field in refused:
        r = client.post(f"/v1/models/{model_id}/evaluations", json=body)
        error = assert_error(r, status, "invalid_argument" if status == 422
                             else "permission_denied")
        if field:
            assert error["field"] == field, error
    Path(data["path"]).unlink()  # the run fails reading it

    r = alice.post(f"/v1/models/{adapter.id}/evaluations",
                   json={"dataset_id": data["id"], "n": 2, "max_tokens": 8})
    assert r.status_code == 202, r.text
    created = r.json()
    assert (created["model_id"], created["base_model_id"], created["n"]) == (
        adapter.id, adapter.base_model_id, 2)
    assert created["ray_job_id"] == f"garden-eval-{created['id']}"

    def ended():
        body = alice.get(f"/v1/evaluations/{created['id']}").json()
        return body if body["status"] in ("completed", "failed") else None

    done = wait_for(ended, 300, "the evaluation's Ray job to end")
    assert done["status"] == "failed" and "FileNotFoundError" in done["error_message"], done
    assert done["scores"] == [] and done["completed_at"]
    listed = alice.get(f"/v1/models/{adapter.id}/evaluations").json()
    assert [e["id"] for e in listed["items"]] == [created["id"]]
    assert_error(bob.get(f"/v1/evaluations/{created['id']}"), 403, "permission_denied")
    assert alice.get(f"/v1/models/{adapter.id}").json()["evaluation"] is None

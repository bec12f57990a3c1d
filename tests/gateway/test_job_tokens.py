"""Job tokens over HTTP, on the deployed gateway: ``POST /v1/training/tokens`` mints one;
bound to a job (as the driver binds it) it reads that job and nothing else (403 in the one
error shape); it is 401 once the job ends or the token expires. The same check
(:func:`serve_apps.auth.check_job_scope`) guards the LLM app: tests/serve_apps/llm."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from catalog import schemas as s
from catalog import tables as t
from tests import factories
from tests.conftest import wait_for
from tests.gateway.fixtures import assert_error, auth

pytestmark = pytest.mark.ray


@pytest.fixture
def refs(catalog_store):
    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"kbase-{tag}", path="/models/x", published=True)
    data = factories.dataset(catalog_store, f"kdata-{tag}", rows=3, path="/data/x.jsonl",
                             size_bytes=9, user_id="alice")
    return base, data


def _spec(refs, name: str) -> s.TrainingJobCreate:
    base, data = refs
    return s.TrainingJobCreate(name=name, base_model_id=base.id, dataset_id=data.id)


def test_a_key_mints_a_token_within_its_bounds(alice, gateway_url):
    r = alice.post("/v1/training/tokens", json={"ttl_s": 600})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["secret"].startswith("gjt_") and body["key"]["prefix"] == body["secret"][:8]
    assert (body["key"]["scope"], body["key"]["job_id"], body["key"]["user_id"]) == (
        "job", None, "alice")
    assert alice.post("/v1/training/tokens").status_code == 201  # the default lifetime
    err = assert_error(alice.post("/v1/training/tokens", json={"ttl_s": 10}),
                       422, "invalid_argument")
    assert "ttl_s" in err["message"]

    with httpx.Client(base_url=gateway_url, headers=auth(body["secret"]), timeout=60) as tok:
        # a token that registered no job reads nothing, and mints nothing
        err = assert_error(tok.get("/v1/training/jobs"), 403, "permission_denied")
        assert "registered none yet" in err["message"]
        assert_error(tok.post("/v1/training/tokens"), 403, "permission_denied")


def test_a_bound_token_reads_its_job_only_and_dies_with_it(alice, gateway_url, catalog_store,
                                                           refs):
    secret = alice.post("/v1/training/tokens").json()["secret"]
    token = catalog_store.authenticate(secret)
    job = catalog_store.create_training_job(_spec(refs, "mine"), job_token_id=token.id)
    other = catalog_store.create_training_job(_spec(refs, "other").model_copy(
        update={"user_id": "alice"}))
    with httpx.Client(base_url=gateway_url, headers=auth(secret), timeout=60) as tok:
        assert tok.get(f"/v1/training/jobs/{job.id}").json()["user_id"] == "alice"
        assert tok.get(f"/v1/training/jobs/{job.id}/events").status_code == 200
        assert tok.get(f"/v1/training/jobs/{job.id}/metrics").status_code == 200
        refused = [("GET", f"/v1/training/jobs/{other.id}"), ("GET", "/v1/training/jobs"),
                   ("GET", "/v1/models"), ("GET", "/v1/datasets"), ("GET", "/v1/whoami"),
                   ("POST", f"/v1/training/jobs/{job.id}/cancel"),
                   ("GET", "/v1/batches"), ("GET", "/v1/keys")]
        for method, path in refused:
            err = assert_error(tok.request(method, path), 403, "permission_denied")
            assert err["message"] == f"a job token is limited to reading job {job.id}", path
        assert catalog_store.training_jobs.get(job.id).status == "pending"  # not cancelled

        catalog_store.transition_job(job.id, "failed", error_message="driver died")
        # refused once the gateway's key cache (GARDEN_CACHE_TTL_S, 5 s) asks again
        wait_for(lambda: tok.get(f"/v1/training/jobs/{job.id}").status_code == 401, 30,
                 "the ended job's token to be refused")
        assert_error(tok.get(f"/v1/training/jobs/{job.id}"), 401, "unauthenticated")


def test_an_expired_token_is_401(gateway_url, catalog_store, refs):
    job = factories.job(catalog_store, base=refs[0], data=refs[1], user_id="alice")
    token, secret = catalog_store.create_job_token(job_id=job.id, ttl_s=60)
    with catalog_store.session() as session:  # a minute later
        session.execute(update(t.ApiKeyRow).where(t.ApiKeyRow.id == token.id).values(
            expires_at=t.utcnow() - timedelta(seconds=1)))
    r = httpx.get(f"{gateway_url}/v1/training/jobs/{job.id}", headers=auth(secret),
                  timeout=60)
    assert_error(r, 401, "unauthenticated")

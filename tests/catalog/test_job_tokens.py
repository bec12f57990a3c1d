"""Job tokens in the catalog, on SQLite and PostgreSQL: minted with a bounded lifetime,
bound to the one training job or batch they register (atomically, with the row), refused
for a second, revoked by any terminal status and dead once expired."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument, InvalidTransition, NotFound
from tests import factories
from tests.catalog.test_batches import make_batch


def _spec(store) -> s.TrainingJobCreate:
    tag = uuid.uuid4().hex[:6]
    base, data = factories.base_model(store, f"b-{tag}"), factories.dataset(store, f"d-{tag}")
    return s.TrainingJobCreate(name="j", base_model_id=base.id, dataset_id=data.id,
                               user_id="mallory")  # the token's user wins over this


def test_a_token_registers_one_job_for_its_user_and_ends_with_it(store):
    token, secret = store.create_job_token("ada", ttl_s=600)
    assert secret.startswith("gjt_") and token.prefix == secret[:8]
    assert (token.scope, token.job_id, token.role, token.revoked) == ("job", None, "user", False)
    left = token.expires_at - t.utcnow()
    assert timedelta(seconds=590) < left <= timedelta(seconds=600)
    assert store.authenticate(secret) == token

    spec = _spec(store)
    job = store.create_training_job(spec, job_token_id=token.id)
    assert job.user_id == "ada"
    assert store.authenticate(secret).job_id == job.id

    with pytest.raises(InvalidArgument, match=f"already registered {job.id}") as info:
        store.create_training_job(spec, job_token_id=token.id)
    assert info.value.field == "job_token_id"
    assert store.training_jobs.list().total == 1  # the refused job was not written

    store.transition_job(job.id, "queued")
    assert store.authenticate(secret) is not None  # a live status keeps it
    store.transition_job(job.id, "cancelled")
    assert store.authenticate(secret) is None
    assert store.api_keys.get(token.id).revoked
    with pytest.raises(InvalidArgument, match="expired or was revoked"):
        store.create_training_job(spec, job_token_id=token.id)


def test_a_batch_binds_its_token_and_files_it_under_it(store):
    token, secret = store.create_job_token("ada")
    batch = make_batch(store, user_id="mallory", job_token_id=token.id)
    assert (batch.user_id, batch.api_key_id) == ("ada", token.id)
    store.transition_batch(batch.id, "failed", message="boom")
    assert store.authenticate(secret) is None


def test_a_token_minted_for_a_job_is_bound_from_the_start(store):
    job = factories.job(store, user_id="ada")
    token, secret = store.create_job_token(job_id=job.id)
    assert (token.user_id, token.job_id) == ("ada", job.id)
    with pytest.raises(InvalidArgument, match="already registered"):
        store.create_training_job(_spec(store), job_token_id=token.id)

    batch = make_batch(store)  # a batch of no one: the admin's
    assert store.create_job_token(job_id=batch.id)[0].user_id == "admin"

    with pytest.raises(InvalidArgument) as info:
        store.create_job_token("bob", job_id=job.id)
    assert info.value.field == "user_id"
    with pytest.raises(NotFound):
        store.create_job_token(job_id="job_missing")
    store.transition_job(job.id, "failed", error_message="x")
    assert store.authenticate(secret) is None
    with pytest.raises(InvalidTransition, match="has ended"):
        store.create_job_token(job_id=job.id)


@pytest.mark.parametrize("ttl_s", [s.MIN_JOB_TOKEN_TTL_S - 1, s.MAX_JOB_TOKEN_TTL_S + 1])
def test_a_lifetime_out_of_bounds_is_refused(store, ttl_s):
    with pytest.raises(InvalidArgument) as info:
        store.create_job_token("ada", ttl_s=ttl_s)
    assert info.value.field == "ttl_s"
    assert store.api_keys.list().total == 0


def test_an_expired_token_authenticates_nothing_and_registers_nothing(store):
    token, secret = store.create_job_token("ada", ttl_s=60)
    with store.session() as session:  # a minute later
        session.execute(update(t.ApiKeyRow).where(t.ApiKeyRow.id == token.id).values(
            expires_at=t.utcnow() - timedelta(seconds=1)))
    assert store.authenticate(secret) is None
    with pytest.raises(InvalidArgument, match="expired or was revoked"):
        store.create_training_job(_spec(store), job_token_id=token.id)


def test_a_full_key_is_no_job_token(store):
    key, _secret = store.create_api_key("ada", "laptop")
    assert (key.scope, key.job_id, key.expires_at) == ("full", None, None)
    with pytest.raises(InvalidArgument, match="is not a job token"):
        store.create_training_job(_spec(store), job_token_id=key.id)
    assert store.api_keys.list(scope="job").total == 0

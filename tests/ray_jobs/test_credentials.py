"""A driver's credential (ray_jobs.credentials) against a real catalog store: a job token
files one job for its user and is refused for a second, naming GARDEN_JOB_TOKEN; a job run
by id needs the token bound to that very job."""

from __future__ import annotations

import pytest

from catalog import schemas as s
from catalog.errors import InvalidArgument
from catalog.port import LocalCatalog
from ray_jobs import credentials
from tests import factories
from train_jobs.run import create_job_from_spec


@pytest.fixture
def job_file(store, tmp_path):
    base, data = factories.base_model(store), factories.dataset(store)
    path = tmp_path / "job.yaml"
    path.write_text(f"name: j\nbase_model_id: {base.name}\ndataset_id: {data.id}\n")
    return path


def test_the_token_wins_over_an_api_key_in_the_runtime_env():
    assert credentials.credential({"GARDEN_JOB_TOKEN": "gjt_t", "GARDEN_API_KEY": "gk_k"}) \
        == ("GARDEN_JOB_TOKEN", "gjt_t")
    assert credentials.credential({"GARDEN_API_KEY": "gk_k"}) == ("GARDEN_API_KEY", "gk_k")
    assert credentials.credential({}) == ("GARDEN_API_KEY", None)


def test_a_job_token_files_one_job_and_is_refused_for_a_second(store, job_file):
    cat = LocalCatalog(store)
    token, secret = store.create_job_token("ada")
    job = create_job_from_spec(cat, job_file, secret)
    assert job.user_id == "ada" and store.api_keys.get(token.id).job_id == job.id

    with pytest.raises(InvalidArgument) as info:
        create_job_from_spec(cat, job_file, secret)
    assert info.value.field == "GARDEN_JOB_TOKEN"
    assert f"already registered {job.id}" in info.value.message
    assert secret not in info.value.message
    assert store.training_jobs.list().total == 1

    # the catalog's own refusal (two drivers racing on one token) names the variable too
    spec = s.TrainingJobCreate(name="k", base_model_id=job.base_model_id,
                               dataset_id=job.dataset_id)
    with pytest.raises(InvalidArgument) as info, credentials.naming("GARDEN_JOB_TOKEN"):
        cat.create_training_job(spec, job_token_id=token.id)
    assert info.value.field == "GARDEN_JOB_TOKEN"


def test_a_job_run_by_id_needs_the_token_bound_to_it(store):
    cat = LocalCatalog(store)
    job = factories.job(store, user_id="ada")
    other = factories.job(store, user_id="ada", base=store.models.get(job.base_model_id),
                          data=store.datasets.get(job.dataset_id))
    _token, secret = store.create_job_token(job_id=job.id)
    credentials.check_bound(cat, job.id, {"GARDEN_JOB_TOKEN": secret})

    _key, full = store.create_api_key("ada", "laptop")
    refusals = {
        "is not set": {},
        f"is bound to {job.id}, not to {other.id}": {"GARDEN_JOB_TOKEN": secret},
        "an API key, not a job token": {"GARDEN_JOB_TOKEN": full},
    }
    for message, env in refusals.items():
        with pytest.raises(InvalidArgument, match=message) as info:
            credentials.check_bound(cat, other.id, env)
        assert info.value.field == "GARDEN_JOB_TOKEN"

    store.transition_job(job.id, "cancelled")
    with pytest.raises(InvalidArgument, match="revoked because its job ended"):
        credentials.check_bound(cat, job.id, {"GARDEN_JOB_TOKEN": secret})


def test_a_batch_file_binds_the_token_to_its_batch(store, tmp_path):
    from batch_jobs.run import BatchJobSpec, create_batch_from_spec

    cat = LocalCatalog(store)
    data = factories.dataset(store, "requests", format="openai_batch")
    spec = BatchJobSpec(input_file=data.id, endpoint="/v1/chat/completions")
    token, secret = store.create_job_token("ada")
    batch = create_batch_from_spec(cat, tmp_path / "batch.yaml", spec, secret)
    assert (batch.user_id, batch.api_key_id) == ("ada", token.id)
    assert store.api_keys.get(token.id).job_id == batch.id
    with pytest.raises(InvalidArgument, match=f"already registered {batch.id}"):
        create_batch_from_spec(cat, tmp_path / "batch.yaml", spec, secret)
    assert store.batches.list().total == 1

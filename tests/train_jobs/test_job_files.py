"""Job files for ``python -m train_jobs.run --config``: the README's examples parse, and a bad
file is refused naming the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import schemas as s
from train_jobs.run import JobSpecError, load_job_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["sft.yaml", "dpo.yaml"])
def test_the_examples_are_valid_jobs(name):
    spec = load_job_spec(EXAMPLES / name)
    assert spec.method == s.TrainingMethod(name.removesuffix(".yaml"))
    assert spec.hyperparameters.max_steps and spec.lora.r == 8


def test_a_bad_job_file_names_the_file_line_and_field(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: x\nbase_model_id: m\ndataset_id: d\nhyperparameters:\n"
                    "  max_steps: 2\n  learning_rate: 5\n")
    with pytest.raises(JobSpecError) as info:
        load_job_spec(path)
    assert info.value.field == "hyperparameters.learning_rate"
    assert f"{path}, line 6" in info.value.message
    assert info.value.details[0]["line"] == 6


def test_a_job_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "job.json"
    path.write_text('["not", "a", "job"]')
    with pytest.raises(JobSpecError, match="a job spec is a mapping"):
        load_job_spec(path)


def test_a_job_file_is_filed_for_the_key_s_user(store, tmp_path, monkeypatch):
    """Names resolve to ids; a catalog key files the job for its user, the bootstrap
    admin key for the file's user_id (else the admin); an unknown key is refused."""
    from catalog.errors import InvalidArgument
    from catalog.port import LocalCatalog
    from tests import factories
    from train_jobs.run import create_job_from_spec

    cat = LocalCatalog(store)
    base, data = factories.base_model(store), factories.dataset(store)
    path = tmp_path / "job.yaml"
    path.write_text(f"name: j\nbase_model_id: {base.name}\ndataset_id: {data.name}\n")
    _key, secret = store.create_api_key("ada", "cli")
    job = create_job_from_spec(cat, path, secret)
    assert (job.user_id, job.base_model_id, job.dataset_id, job.status) == (
        "ada", base.id, data.id, "pending")

    monkeypatch.setenv("GARDEN_ADMIN_KEY", "gk_the_admin")
    assert create_job_from_spec(cat, path, "gk_the_admin").user_id == "admin"
    with pytest.raises(InvalidArgument) as info:
        create_job_from_spec(cat, path, "gk_nobody", "GARDEN_API_KEY")
    assert info.value.field == "GARDEN_API_KEY"
    path.write_text("name: j\nbase_model_id: no-such-model\ndataset_id: x\n")
    with pytest.raises(InvalidArgument) as info:
        create_job_from_spec(cat, path, secret)
    assert info.value.field == "base_model_id"

"""The ``garden`` CLI (typer CliRunner) against the live gateway."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from garden.cli import app

pytestmark = pytest.mark.ray

ROWS = [{"conversations": [{"from": "human", "value": f"hi {i}"},
                           {"from": "gpt", "value": f"hello {i}"}]} for i in range(3)]


@pytest.fixture
def run(gateway_url, keys):
    runner = CliRunner()

    def invoke(*args: str, key: str | None = None):
        return runner.invoke(app, ["--api-url", gateway_url, "--api-key", key or keys.alice,
                                   *args])

    return invoke


def test_datasets_upload_and_list(run, tmp_path):
    path = tmp_path / "cli-chat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS))
    result = run("datasets", "upload", str(path), "--description", "cli")
    assert result.exit_code == 0, result.output
    assert "cli-chat v1, 3 rows, sharegpt" in result.output
    listed = run("datasets", "list", "--name", "cli-chat")
    assert listed.exit_code == 0 and "cli-chat" in listed.output and "1 of 1" in listed.output


def test_errors_print_the_code_and_exit_1(run, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": 1}\n')
    result = run("datasets", "upload", str(path))
    assert result.exit_code == 1
    assert "error 422 invalid_argument" in result.output and "'line': 1" in result.output
    denied = run("keys", "create", "mallory")
    assert denied.exit_code == 1 and "403 permission_denied" in denied.output
    assert "401 unauthenticated" in run("models", "list", key="gk_bad").output


def test_models_list_keys_and_carbon(run, keys):
    assert run("models", "list", "--published").exit_code == 0
    created = run("keys", "create", "dave", "--name", "cli", key=keys.admin)
    assert created.exit_code == 0, created.output
    secret = json.loads(created.output)["secret"]
    mine = run("keys", "list", key=secret)
    assert mine.exit_code == 0 and "dave" in mine.output
    summary = run("carbon", "--group-by", "source")
    assert summary.exit_code == 0 and "carbon by source" in summary.output
    csv_out = run("carbon", "--csv")
    assert csv_out.exit_code == 0 and csv_out.output.startswith("id,created_at,source")


def test_train_rejects_unknown_base_model(run):
    result = run("train", "--base-model", "nope", "--dataset", "ds_x", "--no-wait")
    assert result.exit_code == 1 and "404 not_found" in result.output


def test_models_evaluate_waits_and_reports_a_failed_evaluation(run, catalog_store, tmp_path):
    from pathlib import Path

    from tests.factories import base_and_adapter

    base, adapter = base_and_adapter(catalog_store)
    path = tmp_path / f"cli-eval-{adapter.name}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS))
    assert run("datasets", "upload", str(path)).exit_code == 0
    data = catalog_store.datasets.list(name=path.stem).items[0]

    refused = run("models", "evaluate", base.id, "--dataset", data.id)
    assert refused.exit_code == 1 and "422 invalid_argument" in refused.output
    assert "is a base model" in refused.output
    Path(data.path).unlink()  # the evaluation's Ray job fails reading it
    failed = run("models", "evaluate", adapter.name, "--dataset", data.id, "--n", "2")
    assert failed.exit_code == 1, failed.output
    assert "submitted (Ray job garden-eval-" in failed.output
    assert "failed" in failed.output and "FileNotFoundError" in failed.output

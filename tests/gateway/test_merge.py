"""``POST /v1/models/{model_id}/merge`` on the deployed gateway (the merge runs as a Ray
task, :class:`cluster.work.RayWork`), and ``garden models merge``."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from catalog import schemas as s
from garden.cli import app
from tests.gateway.fixtures import assert_error
from tests.serve_apps.llm.conftest import make_peft_adapter

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def lora(catalog_store, smollm2_folder, tmp_path_factory):
    """A published SmolLM2 base model and alice's private real PEFT adapter of it."""
    tag = uuid.uuid4().hex[:6]
    base = catalog_store.register_model(s.ModelCreate(
        name=f"smol-{tag}", kind=s.ModelKind.base, path=str(smollm2_folder), published=True))
    folder = make_peft_adapter(smollm2_folder, tmp_path_factory.mktemp("merge") / "lora", 3)
    adapter = catalog_store.register_model(s.ModelCreate(
        name=f"lora-{tag}", kind=s.ModelKind.adapter, path=str(folder),
        base_model_id=base.id, user_id="alice"))
    return base, adapter


def test_merge_registers_a_base_model_with_its_lineage(alice, bob, gateway_url, keys, lora):
    base, adapter = lora
    assert_error(bob.post(f"/v1/models/{adapter.id}/merge"), 403, "permission_denied")
    assert_error(alice.post("/v1/models/no-such-model/merge"), 404, "not_found")
    err = assert_error(alice.post(f"/v1/models/{base.id}/merge", json={}),
                       422, "invalid_argument")
    assert err["field"] == "model_id"

    name = f"{adapter.name}-smol"
    r = alice.post(f"/v1/models/{adapter.name}/merge", json={"name": name}, timeout=600)
    assert r.status_code == 201, r.text
    merged = r.json()
    assert (merged["kind"], merged["name"], merged["user_id"]) == ("base", name, "alice")
    assert (merged["base_model_id"], merged["merged_from_id"]) == (base.id, adapter.id)
    assert merged["size_bytes"] > 100_000_000
    assert alice.get(f"/v1/models/{name}").json()["id"] == merged["id"]

    # the CLI, through client.models.merge: the same model again (idempotent)
    result = CliRunner().invoke(app, ["--api-url", gateway_url, "--api-key", keys.alice,
                                      "models", "merge", adapter.id, "--name", name])
    assert result.exit_code == 0, result.output
    assert f"merged {adapter.id} into {merged['id']}: {name} v1" in result.output

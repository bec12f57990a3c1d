"""``/v1/models``: filters, visibility of published models, publish, delete, import."""

from __future__ import annotations

import uuid

import pytest

from catalog import schemas as s
from tests.gateway.fixtures import assert_error

pytestmark = pytest.mark.ray


@pytest.fixture
def models(catalog_store):
    """A published shared base model and an unpublished adapter owned by alice."""
    tag = uuid.uuid4().hex[:6]
    base = catalog_store.register_model(s.ModelCreate(
        name=f"base-{tag}", kind="base", path=f"/models/base-{tag}", published=True))
    adapter = catalog_store.register_model(s.ModelCreate(
        name=f"lora-{tag}", kind="adapter", path=f"/models/lora-{tag}",
        base_model_id=base.id, user_id="alice"))
    return base, adapter


def test_filters_and_visibility(alice, bob, admin, models):
    base, adapter = models
    mine = alice.get("/v1/models", params={"base_model_id": base.id}).json()
    assert [m["id"] for m in mine["items"]] == [adapter.id]
    assert bob.get("/v1/models", params={"base_model_id": base.id}).json()["total"] == 0
    shared = bob.get("/v1/models", params={"published": "true", "kind": "base",
                                           "name": base.name}).json()
    assert [m["id"] for m in shared["items"]] == [base.id]
    assert admin.get("/v1/models", params={"name": adapter.name}).json()["total"] == 1
    assert_error(alice.get("/v1/models", params={"kind": "lora"}), 422, "invalid_argument")


def test_get_by_id_or_name_and_403_on_private_models(alice, bob, models):
    base, adapter = models
    assert bob.get(f"/v1/models/{base.name}").json()["id"] == base.id
    assert alice.get(f"/v1/models/{adapter.name}:1").json()["id"] == adapter.id
    assert_error(bob.get(f"/v1/models/{adapter.id}"), 403, "permission_denied")
    assert_error(bob.get("/v1/models/no-such-model"), 404, "not_found")


def test_publish_then_visible_and_delete_rules(alice, bob, admin, models):
    base, adapter = models
    assert_error(bob.post(f"/v1/models/{adapter.id}/publish"), 403, "permission_denied")
    assert alice.post(f"/v1/models/{adapter.id}/publish").json()["published"] is True
    assert bob.get(f"/v1/models/{adapter.id}").status_code == 200
    assert_error(bob.delete(f"/v1/models/{adapter.id}"), 403, "permission_denied")
    # the base is still referenced by the adapter: conflict, nothing deleted
    assert_error(admin.delete(f"/v1/models/{base.id}"), 409, "conflict")
    assert alice.delete(f"/v1/models/{adapter.id}").status_code == 204
    assert admin.delete(f"/v1/models/{base.id}").status_code == 204
    assert_error(admin.get(f"/v1/models/{base.id}"), 404, "not_found")


def test_import_is_admin_only_and_checks_the_source(alice, admin, tmp_path):
    assert_error(alice.post("/v1/models/import", json={}), 403, "permission_denied")
    err = assert_error(admin.post("/v1/models/import", json={"source": "/no/such.gguf"}),
                       422, "invalid_argument")
    assert err["field"] == "source"
    (tmp_path / "notes.txt").write_text("not a model")
    err = assert_error(admin.post("/v1/models/import", json={"source": str(tmp_path)}),
                       422, "invalid_argument")
    assert "not a Hugging Face model folder" in err["message"]
    assert_error(admin.post("/v1/models/import", json={"sauce": "x"}), 422, "invalid_argument")


@pytest.mark.slow
def test_import_registers_and_publishes_a_real_base_model(admin, bob, smollm2_folder):
    r = admin.post("/v1/models/import", json={"source": str(smollm2_folder),
                                              "name": "smollm2-imported"})
    assert r.status_code == 201, r.text
    model = r.json()
    assert (model["kind"], model["published"]) == ("base", True)
    assert model["config"]["model_type"] == "llama"
    assert bob.get("/v1/models/smollm2-imported").json()["id"] == model["id"]
    again = admin.post("/v1/models/import", json={"source": str(smollm2_folder),
                                                  "name": "smollm2-imported"})
    assert again.json()["id"] == model["id"]

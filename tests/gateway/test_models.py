"""``/v1/models``: filters, visibility of published models, publish, delete, import, a
model's lineage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from catalog import schemas as s
from tests import factories
from tests.gateway.fixtures import assert_error

pytestmark = pytest.mark.ray


@pytest.fixture
def models(catalog_store):
    """A published shared base model and an unpublished adapter owned by alice."""
    return factories.base_and_adapter(catalog_store)


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


# --------------------------------------------------------------------------- lineage


@dataclass
class Lineage:
    """Alice's published adapter of a shared base, trained by her completed job on her
    private dataset (evaluated on another of hers), merged into her private model, with
    requests by alice and bob; a private adapter of hers on the same base."""

    base: s.Model
    adapter: s.Model
    private: s.Model
    merged: s.Model
    data: s.Dataset
    eval_data: s.Dataset
    job: s.TrainingJob


@pytest.fixture
def lineage(catalog_store):
    tag = uuid.uuid4().hex[:6]
    base = factories.base_model(catalog_store, f"lbase-{tag}", published=True)
    data = factories.dataset(catalog_store, f"ldata-{tag}", rows=5, user_id="alice")
    eval_data = factories.dataset(catalog_store, f"leval-{tag}", rows=2, user_id="alice")
    job = factories.job(catalog_store, base=base, data=data, eval_dataset_id=eval_data.id,
                        name=f"ljob-{tag}", user_id="alice")
    catalog_store.transition_job(job.id, "running")
    adapter = catalog_store.register_model(s.ModelCreate(
        name=f"llora-{tag}", kind="adapter", path=f"/models/llora-{tag}",
        base_model_id=base.id, dataset_id=data.id, training_job_id=job.id,
        metrics={"eval_loss": 1.25}, energy_kwh=0.5, emissions_kg=0.2, published=True,
        user_id="alice"))
    job = catalog_store.transition_job(
        job.id, "completed", output_model_id=adapter.id, eval_loss_before=2.5,
        eval_loss_after=1.25, energy_kwh=0.5, emissions_kg=0.2)
    private = catalog_store.register_model(s.ModelCreate(
        name=f"lsecret-{tag}", kind="adapter", path=f"/models/lsecret-{tag}",
        base_model_id=base.id, user_id="alice"))
    merged = catalog_store.register_model(s.ModelCreate(
        name=f"lmerged-{tag}", kind="base", path=f"/models/lmerged-{tag}",
        base_model_id=base.id, merged_from_id=adapter.id, user_id="alice"))
    now = datetime.now(UTC)

    def request(user: str, prompt: int, completion: int, **fields) -> s.UsageCreate:
        fields = {"adapter": adapter.name, "model_id": adapter.id, **fields}
        return s.UsageCreate(model=base.name, user_id=user, prompt_tokens=prompt,
                             completion_tokens=completion, energy_kwh=0.001,
                             emissions_kg=0.0004, created_at=now, **fields)

    catalog_store.record_usage([
        request("alice", 10, 5, cost_usd=0.5),
        request("alice", 20, 10),
        request("bob", 7, 3, cost_usd=0.25),
        request("bob", 1, 1, adapter=None, model_id=base.id),  # the base itself
    ])
    return Lineage(base, adapter, private, merged, data, eval_data, job)


def _edges(body: dict) -> set[tuple[str, str, str]]:
    return {(e["source"], e["target"], e["label"]) for e in body["edges"]}


def _check_graph(body: dict) -> None:
    """Each node and edge once; every edge's ends are nodes."""
    ids = [n["id"] for n in body["nodes"]]
    assert len(ids) == len(set(ids))
    assert len(body["edges"]) == len(_edges(body))
    assert all(e["source"] in ids and e["target"] in ids for e in body["edges"])


def test_lineage_of_an_adapter_for_its_owner_and_for_another_user(alice, bob, lineage):
    base, adapter, merged = lineage.base, lineage.adapter, lineage.merged
    data, eval_data, job = lineage.data, lineage.eval_data, lineage.job
    r = alice.get(f"/v1/models/{adapter.id}/lineage")
    assert r.status_code == 200, r.text
    mine = r.json()
    s.ModelLineage.model_validate(mine)
    assert mine["model"]["id"] == adapter.id and mine["base_model"]["id"] == base.id
    assert (mine["dataset"]["id"], mine["eval_dataset"]["id"]) == (data.id, eval_data.id)
    assert mine["training_job"]["id"] == job.id
    assert (mine["training_job"]["eval_loss_before"], mine["training_job"]["emissions_kg"]) == (
        2.5, 0.2)
    assert mine["merged_from"] is None and mine["adapters"] == []
    assert [m["id"] for m in mine["merged"]] == [merged.id]
    # every caller's requests on the adapter, not the base's own request
    serving = mine["serving"]
    assert serving["scope"] == "all"
    assert (serving["requests"], serving["prompt_tokens"], serving["completion_tokens"]) == (
        3, 37, 18)
    assert serving["cost_usd"] == pytest.approx(0.75)
    assert serving["energy_kwh"] == pytest.approx(0.003)
    assert serving["emissions_kg"] == pytest.approx(0.0012)
    requests = f"requests:{adapter.id}"
    assert {(n["id"], n["kind"], n["label"]) for n in mine["nodes"]} == {
        (data.id, "dataset", f"{data.name} v1 (5 rows)"),
        (eval_data.id, "dataset", f"{eval_data.name} v1 (2 rows)"),
        (job.id, "training_job", f"{job.name} (completed)"),
        (adapter.id, "model", f"{adapter.name} v1 (adapter)"),
        (base.id, "model", f"{base.name} v1 (base)"),
        (merged.id, "model", f"{merged.name} v1 (base)"),
        (requests, "requests", "3 requests, 55 tokens"),
    }
    assert _edges(mine) == {
        (data.id, job.id, "trained on"), (eval_data.id, job.id, "evaluated on"),
        (job.id, adapter.id, "produced"), (base.id, adapter.id, "base of"),
        (adapter.id, merged.id, "merged into"), (adapter.id, requests, "served"),
    }
    _check_graph(mine)
    # by name:version too
    assert alice.get(f"/v1/models/{adapter.name}:1/lineage").json()["model"]["id"] == adapter.id

    theirs = bob.get(f"/v1/models/{adapter.id}/lineage").json()
    assert theirs["serving"]["scope"] == "caller"
    assert (theirs["serving"]["requests"], theirs["serving"]["prompt_tokens"],
            theirs["serving"]["completion_tokens"]) == (1, 7, 3)
    assert theirs["serving"]["cost_usd"] == pytest.approx(0.25)
    # alice's private dataset, job and merged model are hidden from bob
    assert (theirs["dataset"], theirs["eval_dataset"], theirs["training_job"]) == (
        None, None, None)
    assert theirs["merged"] == [] and theirs["base_model"]["id"] == base.id
    assert {n["id"] for n in theirs["nodes"]} == {adapter.id, base.id, requests}
    assert _edges(theirs) == {(base.id, adapter.id, "base of"),
                              (adapter.id, requests, "served")}
    assert {n["label"] for n in theirs["nodes"] if n["kind"] == "requests"} == {
        "1 requests, 10 tokens"}
    _check_graph(theirs)


def test_lineage_of_a_base_model_lists_the_adapters_the_caller_may_read(
        alice, bob, admin, lineage):
    base, adapter, private = lineage.base, lineage.adapter, lineage.private
    theirs = bob.get(f"/v1/models/{base.id}/lineage").json()
    assert [m["id"] for m in theirs["adapters"]] == [adapter.id]
    assert theirs["base_model"] is None and theirs["training_job"] is None
    assert _edges(theirs) == {(base.id, adapter.id, "base of"),
                              (base.id, f"requests:{base.id}", "served")}
    # a shared base model: bob's own requests under its name, adapters' included
    assert (theirs["serving"]["scope"], theirs["serving"]["requests"],
            theirs["serving"]["prompt_tokens"]) == ("caller", 2, 8)
    _check_graph(theirs)

    mine = alice.get(f"/v1/models/{base.name}/lineage").json()
    assert [m["id"] for m in mine["adapters"]] == [private.id, adapter.id]  # newest first
    assert {e["target"] for e in mine["edges"] if e["label"] == "base of"} == {
        adapter.id, private.id}
    assert mine["merged"] == []  # the merged model is merged from the adapter, not the base
    assert mine["serving"]["scope"] == "caller"  # the base is the system's, not alice's
    assert mine["serving"]["requests"] == 2
    _check_graph(mine)

    everyone = admin.get(f"/v1/models/{base.id}/lineage").json()
    assert everyone["serving"]["scope"] == "all"
    assert (everyone["serving"]["requests"], everyone["serving"]["completion_tokens"]) == (
        4, 19)
    assert len(everyone["adapters"]) == 2


def test_lineage_of_a_merged_model_names_its_base_and_adapter(alice, lineage):
    merged, adapter, base = lineage.merged, lineage.adapter, lineage.base
    body = alice.get(f"/v1/models/{merged.id}/lineage").json()
    assert (body["merged_from"]["id"], body["base_model"]["id"]) == (adapter.id, base.id)
    assert _edges(body) == {(adapter.id, merged.id, "merged into"),
                            (base.id, merged.id, "base of"),
                            (merged.id, f"requests:{merged.id}", "served")}
    assert body["serving"] == {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
                               "cost_usd": 0.0, "energy_kwh": 0.0, "emissions_kg": 0.0,
                               "scope": "all"}
    _check_graph(body)


def test_lineage_of_a_private_or_unknown_model(alice, bob, lineage):
    assert_error(bob.get(f"/v1/models/{lineage.private.id}/lineage"), 403,
                 "permission_denied")
    assert alice.get(f"/v1/models/{lineage.private.id}/lineage").status_code == 200
    assert_error(bob.get("/v1/models/no-such-model/lineage"), 404, "not_found")

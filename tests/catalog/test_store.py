"""CatalogStore on both backends: CRUD, pagination, lineage, state machines, carbon,
usage, prompt styles, and that a failed operation writes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from catalog import schemas as s
from catalog.errors import Conflict, InvalidArgument, InvalidTransition, NotFound
from catalog.store import PurgeItem
from tests.factories import base_model, dataset, job


def test_create_get_update_delete_dataset(store):
    ds = dataset(store, "faq")
    assert store.datasets.get(ds.id) == ds
    assert ds.created_at.tzinfo is not None
    updated = store.datasets.update(ds.id, description="frequently asked")
    assert updated.description == "frequently asked"
    assert updated.updated_at >= ds.updated_at
    store.datasets.delete(ds.id)
    with pytest.raises(NotFound):
        store.datasets.get(ds.id)


def test_unknown_id_raises_not_found(store):
    with pytest.raises(NotFound) as err:
        store.models.get("mdl_missing")
    assert err.value.field == "id"
    with pytest.raises(NotFound):
        store.transition_job("job_missing", "running")


def test_duplicate_name_version_is_conflict_and_keeps_first(store):
    first = base_model(store, "smol")
    with pytest.raises(Conflict):
        store.register_model(s.ModelCreate(name="smol", kind="base", path="/other"))
    page = store.models.list(name="smol")
    assert page.total == 1 and page.items[0].path == first.path


def test_update_rejects_non_updatable_field(store):
    ds = dataset(store)
    with pytest.raises(InvalidArgument) as err:
        store.datasets.update(ds.id, num_rows=99)
    assert err.value.field == "num_rows"
    assert store.datasets.get(ds.id).num_rows == ds.num_rows


def test_pagination_walks_every_row_once_with_totals(store):
    made = {dataset(store, f"d{i}").id for i in range(7)}
    seen, cursor, pages = [], None, 0
    while True:
        page = store.datasets.list(page_size=3, cursor=cursor)
        assert page.total == 7
        seen += [d.id for d in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 7 and set(seen) == made
    created = [store.datasets.get(i).created_at for i in seen]
    assert created == sorted(created, reverse=True)


def test_list_filters_and_rejects_unknown_filter(store):
    base = base_model(store)
    store.register_model(s.ModelCreate(name="a1", kind="adapter", path="/a", base_model_id=base.id))
    assert [m.name for m in store.models.list(kind="adapter").items] == ["a1"]
    assert store.models.list(kind="base").total == 1
    with pytest.raises(InvalidArgument) as err:
        store.models.list(color="red")
    assert err.value.field == "color"
    with pytest.raises(InvalidArgument):
        store.models.list(cursor="not-a-cursor!")


def test_adapter_lineage_is_checked_and_recorded(store):
    base = base_model(store)
    data = dataset(store)
    j = job(store, base=base, data=data)
    adapter = store.register_model(s.ModelCreate(
        name="smol-chat", kind="adapter", path="/adapters/1", base_model_id=base.id,
        dataset_id=data.id, training_job_id=j.id, metrics={"eval_loss": 1.5}, size_bytes=1234,
    ))
    assert store.training_jobs.get(j.id).output_model_id == adapter.id
    assert adapter.metrics == {"eval_loss": 1.5}
    with pytest.raises(InvalidArgument) as err:
        store.register_model(s.ModelCreate(
            name="bad", kind="adapter", path="/x", base_model_id=adapter.id))
    assert err.value.field == "base_model_id"
    with pytest.raises(InvalidArgument):
        store.register_model(s.ModelCreate(
            name="bad", kind="adapter", path="/x", base_model_id="mdl_nope"))
    assert store.models.list(name="bad").total == 0
    with pytest.raises(ValidationError) as verr:
        s.ModelCreate(name="x", kind="adapter", path="/x")
    assert "base_model_id" in str(verr.value)


def test_find_model_by_id_name_and_version(store):
    v1 = base_model(store, "smol")
    v2 = store.register_model(s.ModelCreate(name="smol", version=2, kind="base", path="/2"))
    assert store.find_model(v1.id) == v1
    assert store.find_model("smol") == v2
    assert store.find_model("smol:1") == v1
    assert store.next_version("models", "smol") == 3
    with pytest.raises(NotFound):
        store.find_model("smol:9")


def test_job_state_machine(store):
    j = job(store)
    assert j.status == "pending" and j.started_at is None
    j = store.transition_job(j.id, "queued", ray_job_id="raysubmit_1")
    assert j.ray_job_id == "raysubmit_1"
    j = store.transition_job(j.id, "running")
    assert j.started_at is not None
    assert store.transition_job(j.id, "running").updated_at == j.updated_at  # no-op
    j = store.transition_job(j.id, "failed", error_message="CUDA OOM")
    assert j.completed_at is not None and j.error_message == "CUDA OOM"
    events = [e["message"] for e in store.list_events(j.id)]
    assert events == ["job created", "status -> queued", "status -> running",
                      "status -> failed: CUDA OOM"]


def test_illegal_transition_raises_and_writes_nothing(store):
    j = job(store)
    store.transition_job(j.id, "running")
    done = store.transition_job(j.id, "completed")
    before = store.list_events(j.id)
    for bad in ("running", "pending", "failed", "cancelled"):
        with pytest.raises(InvalidTransition):
            store.transition_job(j.id, bad, error_message="late")
    after = store.training_jobs.get(j.id)
    assert after.status == "completed" and after.error_message is None
    assert after.updated_at == done.updated_at
    assert store.list_events(j.id) == before


def test_training_job_references_are_checked(store):
    base = base_model(store)
    with pytest.raises(InvalidArgument) as err:
        store.create_training_job(s.TrainingJobCreate(
            name="j", base_model_id=base.id, dataset_id="ds_missing"))
    assert err.value.field == "dataset_id"
    assert store.training_jobs.list().total == 0


def test_training_job_schema_names_bad_fields():
    with pytest.raises(ValidationError) as err:
        s.TrainingJobCreate(name="j", base_model_id="m", dataset_id="d",
                            lora={"r": 512}, hyperparameters={"learning_rate": 0.5})
    locs = {".".join(map(str, e["loc"])) for e in err.value.errors()}
    assert locs == {"lora.r", "hyperparameters.learning_rate"}
    with pytest.raises(ValidationError, match=r"quantization\.bits"):
        s.TrainingJobCreate(name="j", base_model_id="m", dataset_id="d",
                            quantization={"bits": 4})


def test_metrics_checkpoints_and_retention(store):
    j = job(store)
    store.append_metrics(j.id, [s.MetricPoint(step=0, eval_loss=3.0)])
    store.append_metrics(j.id, [s.MetricPoint(step=10, train_loss=2.5, learning_rate=1e-4),
                                s.MetricPoint(step=20, train_loss=2.1, eval_loss=2.2)])
    store.append_metrics(j.id, [s.MetricPoint(step=20, eval_loss=2.15, perplexity=8.6)])
    points = store.list_metrics(j.id)
    assert [p.step for p in points] == [0, 10, 20]
    assert points[1].learning_rate == 1e-4
    # a later point at a recorded step merges: new values win, the others stay
    assert (points[2].train_loss, points[2].eval_loss, points[2].perplexity) == (2.1, 2.15, 8.6)
    for step in (5, 10, 15):
        kept = store.add_checkpoint(j.id, s.Checkpoint(step=step, path=f"/c/{step}"), keep=2)
    assert [c.step for c in kept] == [10, 15]
    kept = store.add_checkpoint(j.id, s.Checkpoint(step=15, path="/c/15b"), keep=2)
    assert [(c.step, c.path) for c in kept] == [(10, "/c/10"), (15, "/c/15b")]
    assert store.list_checkpoints(j.id) == kept


def test_a_job_resumes_from_another_jobs_checkpoint_by_job_and_step(store):
    first = job(store, user_id="ann")
    store.add_checkpoint(first.id, s.Checkpoint(step=20, path="/runs/a/checkpoint-000020"))
    base_id, data_id = first.base_model_id, first.dataset_id

    def resume(ref: str, **fields):
        fields = {"base_model_id": base_id, "dataset_id": data_id, "user_id": "ann",
                  **fields}
        return store.create_training_job(s.TrainingJobCreate(
            name="again", resume_from_checkpoint=ref, **fields))

    again = resume(f"{first.id}:20")
    assert again.resume_from_checkpoint == "/runs/a/checkpoint-000020"
    assert any(f"step 20 of job {first.id}" in e["message"]
               for e in store.list_events(again.id))
    assert resume("s3://bucket/x:20").resume_from_checkpoint == "s3://bucket/x:20"  # a folder

    refused = {
        f"{first.id}:30": "no checkpoint at step 30; kept: [20]",
        "job_0123abcd:20": "not found",
    }
    for ref, message in refused.items():
        with pytest.raises(InvalidArgument, match=re.escape(message)) as info:
            resume(ref)
        assert info.value.field == "resume_from_checkpoint"
    with pytest.raises(InvalidArgument, match="not found"):
        resume(f"{first.id}:20", user_id="bob")  # another user's job is not found
    with pytest.raises(InvalidArgument, match="other LoRA settings"):
        resume(f"{first.id}:20", lora={"r": 4})
    other = base_model(store, "other-base")
    with pytest.raises(InvalidArgument, match="trained base model"):
        resume(f"{first.id}:20", base_model_id=other.id)
    assert store.training_jobs.list().total == 3  # nothing written by a refusal


def test_prediction_lifecycle(store):
    p = store.predictions.create(s.PredictionCreate(
        provider="replicate", model="black-forest-labs/flux-schnell", operation="generate",
        modality="image", input={"prompt": "a fox"}))
    assert p.status == "starting"
    p = store.transition_prediction(p.id, "processing", provider_prediction_id="r8_abc")
    assert p.started_at is not None and p.provider_prediction_id == "r8_abc"
    p = store.transition_prediction(p.id, "succeeded", output=["https://x/1.png"])
    assert p.completed_at is not None and p.duration_s >= 0 and p.output == ["https://x/1.png"]
    with pytest.raises(InvalidTransition):
        store.transition_prediction(p.id, "processing")
    assert store.predictions.list(status="succeeded").total == 1


def test_usage_batch_is_idempotent_by_id(store):
    recs = [s.UsageCreate(id=f"req-{i}", model="smol", prompt_tokens=5, completion_tokens=i)
            for i in range(5)]
    assert store.record_usage(recs) == [f"req-{i}" for i in range(5)]
    store.record_usage([*recs[:3], s.UsageCreate(model="smol", completion_tokens=1)])
    page = store.usage.list(model="smol", page_size=100)
    assert page.total == 6
    by_id = {u.id: u for u in page.items}
    assert by_id["req-4"].total_tokens == 9


def test_carbon_summary_groups(store):
    base = base_model(store)
    j = job(store, base=base)
    store.record_carbon(s.CarbonCreate(source="training", energy_kwh=0.2, emissions_kg=0.08,
                                       training_job_id=j.id, model_id=base.id))
    store.record_carbon(s.CarbonCreate(source="training", energy_kwh=0.1, emissions_kg=0.04,
                                       training_job_id=j.id, model_id=base.id))
    store.record_usage([s.UsageCreate(model="smol", emissions_kg=0.001, energy_kwh=0.002)] * 2)
    got = store.training_jobs.get(j.id)
    assert got.energy_kwh == pytest.approx(0.3) and got.emissions_kg == pytest.approx(0.12)
    by_job = store.carbon_summary("job")
    assert [(r.key, r.records) for r in by_job.rows] == [(j.id, 2)]
    by_model = {r.key: r for r in store.carbon_summary("model").rows}
    assert by_model[base.id].emissions_kg == pytest.approx(0.12)
    assert by_model["smol"].energy_kwh == pytest.approx(0.004)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    by_day = store.carbon_summary("day")
    assert [r.key for r in by_day.rows] == [today]
    assert by_day.total_emissions_kg == pytest.approx(0.122)
    future = datetime.now(UTC) + timedelta(days=1)
    assert store.carbon_summary("month", since=future).rows == []
    with pytest.raises(InvalidArgument):
        store.carbon_summary("color")


def test_prompt_helper_versions_and_forks(store):
    helper = store.create_prompt_helper(s.PromptHelperCreate(
        name="cinematic", text="cinematic lighting, 35mm", placement="append", user_id="u1"))
    v2 = store.add_prompt_helper_version(helper.id, "cinematic lighting, 70mm")
    v3 = store.add_prompt_helper_version(helper.id, "noir", placement="prefix")
    assert (v2.version, v2.placement, v3.version, v3.placement) == (2, "append", 3, "prefix")
    assert store.prompt_helpers.get(helper.id).current_version == 3
    assert store.get_prompt_helper_version(helper.id).text == "noir"
    assert store.get_prompt_helper_version(helper.id, 1).text == "cinematic lighting, 35mm"
    assert [v.version for v in store.list_prompt_helper_versions(helper.id)] == [1, 2, 3]
    fork = store.fork_prompt_helper(helper.id, name="my-noir", user_id="u2")
    assert fork.forked_from_id == helper.id and fork.current_version == 1
    assert store.get_prompt_helper_version(fork.id).text == "noir"
    theme = store.theme_helpers.create(s.ThemeHelperCreate(
        name="moody", prompt_helper_ids=[helper.id]))
    tfork = store.fork_theme_helper(theme.id, name="moody-2")
    assert tfork.prompt_helper_ids == [helper.id] and tfork.forked_from_id == theme.id
    with pytest.raises(Conflict):
        store.create_prompt_helper(s.PromptHelperCreate(name="cinematic", text="dup",
                                                        user_id="u1"))
    with pytest.raises(NotFound):
        store.add_prompt_helper_version("ph_missing", "x")


def test_media_rows_and_edits(store):
    img = store.images.create(s.ImageCreate(
        prompt="a fox", provider="stability", model="core", width=1024, height=1024))
    files = [s.StoredFile(path="/m/1.png", mime_type="image/png", size_bytes=10,
                          width=1024, height=1024)]
    assert store.images.update(img.id, files=files).files == files
    edit = store.image_edits.create(s.ImageEditCreate(
        kind="upscale", operation="conservative", image_id=img.id))
    assert store.image_edits.list(image_id=img.id).items == [edit]
    with pytest.raises(ValidationError, match="exactly one"):
        s.ImageEditCreate(kind="edit", operation="inpaint")
    with pytest.raises(ValidationError) as err:
        s.ImageCreate(prompt="x", provider="p", model="m", width=10)
    assert err.value.errors()[0]["loc"] == ("width",)
    vid = store.videos.create(s.VideoCreate(prompt="waves", provider="runway",
                                            model="gen4_turbo", ratio="16:9"))
    assert store.videos.get(vid.id).ratio == "16:9"
    project = store.create_project(s.ProjectCreate(name="Zoo Animals", user_id="u1"))
    assert project.slug == "zoo-animals"
    assert store.create_project(s.ProjectCreate(name="Zoo animals!")).slug == "zoo-animals-2"
    first = store.add_project_item(project.id, s.ProjectItemCreate(video_id=vid.id))
    second = store.add_project_item(project.id, s.ProjectItemCreate(image_id=img.id))
    assert (first.position, second.position) == (0, 1)
    assert store.list_project_items(project.id) == [first, second]
    assert store.find_project("zoo-animals") == project
    assert [r.id for r in store.images.list(project_id=project.id).items] == [img.id]
    with pytest.raises(Conflict):
        store.add_project_item(project.id, s.ProjectItemCreate(image_id=img.id))
    with pytest.raises(ValidationError, match="exactly one"):
        s.ProjectItemCreate()


def test_tags_favorites_soft_delete_and_purge_queries(store):
    imgs = [store.images.create(s.ImageCreate(prompt=f"p{i}", provider="stability",
                                              model="core", user_id="u1")) for i in range(3)]
    assert store.set_tags("image", imgs[0].id, ["fox", "night ", "fox"], "u1") == [
        "fox", "night"]
    store.set_tags("image", imgs[1].id, ["night"], "u1")
    assert store.images.get(imgs[0].id).tags == ["fox", "night"]
    assert {r.id for r in store.images.list(tag="night").items} == {imgs[0].id, imgs[1].id}
    assert [r.id for r in store.images.list(tag="fox").items] == [imgs[0].id]
    store.set_tags("image", imgs[0].id, ["owl"], "u1")  # replaces
    assert store.images.get(imgs[0].id).tags == ["owl"]
    assert store.tags.list(user_id="u1").total == 3  # the tags themselves stay
    with pytest.raises(InvalidArgument) as bad:
        store.set_tags("image", imgs[0].id, ["no/slash"], "u1")
    assert bad.value.field == "tags"

    helper = store.create_prompt_helper(s.PromptHelperCreate(name="h", text="x", user_id="u1"))
    assert store.set_favorite("u2", "prompt_helper", helper.id) is True
    store.set_favorite("u2", "prompt_helper", helper.id)  # twice: still one
    assert [h.id for h in store.prompt_helpers.list(favorite_of="u2").items] == [helper.id]
    store.set_tags("prompt_helper", helper.id, ["mood"], "u1")
    store.prompt_helpers.delete(helper.id)  # takes its tags and favourites with it
    assert store.prompt_helpers.list(favorite_of="u2").total == 0
    with pytest.raises(NotFound):
        store.set_favorite("u2", "prompt_helper", helper.id)

    files = [s.StoredFile(path="/m/a.png", mime_type="image/png", size_bytes=1)]
    store.images.update(imgs[2].id, files=files, deleted_at=datetime.now(UTC))
    assert imgs[2].id not in {r.id for r in store.images.list().items}
    assert imgs[2].id in {r.id for r in store.images.list(include_deleted=True).items}
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert store.media_to_purge(deleted_before=later, created_before=None) == [
        PurgeItem("images", imgs[2].id, ["/m/a.png"])]
    assert store.media_to_purge(deleted_before=later - timedelta(days=1),
                                created_before=None) == []
    store.mark_purged("images", imgs[2].id)
    purged = store.images.get(imgs[2].id)
    assert purged.files == [] and purged.purged_at is not None
    assert store.media_to_purge(deleted_before=later, created_before=later) == []


def test_style_and_theme_versions_fields(store):
    helper = store.create_prompt_helper(s.PromptHelperCreate(
        name="noir", text="film noir", negative_text="colour", placements={"video": "prefix"},
        style_presets={"stability": "cinematic"}, category="film", user_id="u1"))
    v1 = store.get_prompt_helper_version(helper.id)
    assert (v1.negative_text, v1.placement_for("video"), v1.placement_for("image")) == (
        "colour", "prefix", "append")
    v2 = store.add_prompt_helper_version(helper.id, "noir, rain", style_presets={},
                                         notes="no preset")
    assert (v2.version, v2.style_presets, v2.notes) == (2, {}, "no preset")
    with pytest.raises(InvalidArgument) as bad:
        store.add_prompt_helper_version(helper.id, "x", placements={"image": "sideways"})
    assert bad.value.field.startswith("placements")
    theme = store.create_theme_helper(s.ThemeHelperCreate(
        name="moody", text="moody", prompt_helper_ids=[helper.id], user_id="u1"))
    tv2 = store.add_theme_helper_version(theme.id, text="moodier", prompt_helper_ids=[])
    assert tv2.version == 2
    current = store.theme_helpers.get(theme.id)
    assert (current.current_version, current.text, current.prompt_helper_ids) == (
        2, "moodier", [])
    assert store.get_theme_helper_version(theme.id, 1).prompt_helper_ids == [helper.id]
    fork = store.fork_theme_helper(theme.id, name="mine", user_id="u2")
    store.add_theme_helper_version(theme.id, text="changed later")
    assert store.theme_helpers.get(fork.id).text == "moodier"
    assert [v.version for v in store.list_theme_helper_versions(fork.id)] == [1]
    builtins = store.prompt_helpers.list(is_builtin=True).items
    assert builtins and all(h.is_public and h.user_id is None for h in builtins)
    visible = {h.id for h in store.prompt_helpers.list(visible_to="u2", page_size=100).items}
    assert helper.id not in visible and {h.id for h in builtins} <= visible


def test_api_keys_store_only_a_hash(store):
    key, secret = store.create_api_key("alice", "laptop", "admin")
    assert secret.startswith("gk_") and key.prefix == secret[:8]
    assert store.authenticate(secret) == key
    assert store.authenticate(secret + "x") is None
    with store.session() as session:
        from catalog.tables import ApiKeyRow
        row = session.get(ApiKeyRow, key.id)
        assert secret not in (row.key_hash, row.prefix)


def test_delete_referenced_row_is_conflict_and_keeps_it(store):
    j = job(store)
    with pytest.raises(Conflict):
        store.models.delete(j.base_model_id)
    assert store.models.get(j.base_model_id).id == j.base_model_id


# --------------------------------------------------------------------------- training engine


def test_claim_job_moves_a_pending_job_to_running_once(store):
    j = job(store)
    claimed = store.claim_job(j.id, "raysubmit_1")
    assert (claimed.status, claimed.ray_job_id) == ("running", "raysubmit_1")
    assert claimed.started_at is not None
    events = store.list_events(j.id)
    assert [e["message"] for e in events] == ["job created", "status -> running"]
    for ray_job_id in ("raysubmit_1", "raysubmit_2", None):
        with pytest.raises(InvalidTransition, match="already running") as err:
            store.claim_job(j.id, ray_job_id)
        assert err.value.field == "status"
    after = store.training_jobs.get(j.id)
    assert after.updated_at == claimed.updated_at and after.started_at == claimed.started_at
    assert after.ray_job_id == "raysubmit_1"
    assert store.list_events(j.id) == events


def test_claim_job_takes_a_queued_job_only_for_its_ray_job(store):
    j = job(store)
    store.transition_job(j.id, "queued", ray_job_id="raysubmit_a")
    for other in ("raysubmit_b", None):
        with pytest.raises(InvalidTransition, match="raysubmit_a") as err:
            store.claim_job(j.id, other)
        assert err.value.field == "ray_job_id"
    assert store.training_jobs.get(j.id).status == "queued"
    claimed = store.claim_job(j.id, "raysubmit_a")
    assert (claimed.status, claimed.ray_job_id) == ("running", "raysubmit_a")
    assert [e["message"] for e in store.list_events(j.id)] == [
        "job created", "status -> queued", "status -> running"]


def test_claim_job_without_a_ray_job_leaves_it_unset(store):
    claimed = store.claim_job(job(store).id, None)
    assert (claimed.status, claimed.ray_job_id) == ("running", None)


@pytest.mark.parametrize("end", ["completed", "failed", "cancelled"])
def test_claim_job_refuses_an_ended_job(store, end):
    j = job(store)
    if end == "completed":
        store.transition_job(j.id, "running")
    store.transition_job(j.id, end)
    with pytest.raises(InvalidTransition, match=f"already {end}") as err:
        store.claim_job(j.id, "raysubmit_1")
    assert err.value.field == "status"
    after = store.training_jobs.get(j.id)
    assert (after.status, after.ray_job_id) == (end, None)


def test_claim_job_races_have_one_winner(store):
    """Claims from many threads at once (each its own transaction): exactly one wins."""
    import threading

    j = job(store)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def claim(n: int) -> None:
        barrier.wait()
        try:
            store.claim_job(j.id, None)
            outcomes.append("won")
        except InvalidTransition as exc:
            outcomes.append(exc.field or "")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["status"] * 5 + ["won"]
    assert [e["message"] for e in store.list_events(j.id)].count("status -> running") == 1


def test_claim_job_unknown_id_is_not_found(store):
    with pytest.raises(NotFound):
        store.claim_job("job_missing", None)


def test_job_method_must_suit_the_dataset_format(store):
    base = base_model(store)
    chats = dataset(store, name="chats", format="sharegpt")
    pairs = dataset(store, name="pairs", format="preference")
    oa_pairs = dataset(store, name="oa-pairs", format="openai_preference")
    refused = [
        ({"method": "dpo", "data": chats}, "dpo needs one of openai_preference, preference"),
        ({"data": pairs}, "sft needs one of alpaca, openai, sharegpt"),
        ({"method": "dpo", "data": pairs, "eval_dataset_id": chats.id},
         f"eval_dataset_id {chats.id!r} has format sharegpt"),
        ({"data": chats, "eval_dataset_id": oa_pairs.id}, "sft needs one of"),
    ]
    for overrides, message in refused:
        with pytest.raises(InvalidArgument, match=message) as err:
            job(store, base=base, **overrides)
        assert err.value.field == "method"
    assert store.training_jobs.list().total == 0
    dpo = job(store, base=base, method="dpo", data=pairs, eval_dataset_id=oa_pairs.id,
              report_to=["tensorboard"])
    assert (dpo.method, dpo.report_to) == ("dpo", ["tensorboard"])
    sft = job(store, base=base, data=chats)
    assert (sft.method, sft.report_to, sft.progress, sft.total_steps) == ("sft", [], 0.0, 0)
    assert store.training_jobs.get(dpo.id).method == "dpo"


def test_job_progress_is_updatable(store):
    j = job(store)
    j = store.training_jobs.update(j.id, total_steps=40, total_epochs=2.0)
    j = store.transition_job(j.id, "running", progress=0.25, current_step=10,
                             current_epoch=0.5)
    again = store.training_jobs.get(j.id)
    assert (again.progress, again.current_step, again.total_steps) == (0.25, 10, 40)
    assert (again.current_epoch, again.total_epochs) == (0.5, 2.0)
    with pytest.raises(InvalidArgument):
        store.training_jobs.update(j.id, progress=1.5)  # the schema bounds it to 0..1
    with pytest.raises(InvalidArgument) as err:
        store.training_jobs.update(j.id, method="dpo")
    assert err.value.field == "method"


def test_checkpoints_keep_the_best_by_eval_loss_and_the_newest(store):
    j = job(store)

    def add(step: int, eval_loss: float | None, **fields) -> list[int]:
        kept = store.add_checkpoint(
            j.id, s.Checkpoint(step=step, path=f"/c/{step}", eval_loss=eval_loss, **fields),
            keep=2)
        assert store.list_checkpoints(j.id) == kept
        return [c.step for c in kept]

    assert add(1, 3.0) == [1]
    assert add(2, 1.0) == [1, 2]
    assert add(3, 2.0) == [2, 3]  # best two, the newest among them
    assert add(4, 2.5) == [2, 3, 4]  # newest-k would keep 3, 4
    assert add(5, 0.5) == [2, 5]  # step 5 is both best and newest
    assert add(6, None) == [2, 5, 6]  # without a loss: ranks last, kept only as the newest
    assert add(7, None) == [2, 5, 7]
    # equal losses rank the newest first: 8 (1.0) before 2 (1.0)
    assert add(8, 1.0, train_loss=0.9, size_bytes=4096) == [5, 8]
    [newest] = [c for c in store.list_checkpoints(j.id) if c.step == 8]
    assert (newest.eval_loss, newest.train_loss, newest.size_bytes) == (1.0, 0.9, 4096)


def test_checkpoints_without_eval_loss_keep_the_newest(store):
    j = job(store)
    for step in (1, 2, 3, 4):
        kept = store.add_checkpoint(
            j.id, s.Checkpoint(step=step, path=f"/c/{step}",
                               eval_loss=2.0 if step == 1 else None), keep=1)
    assert [c.step for c in kept] == [1, 4]
    with pytest.raises(InvalidArgument) as err:
        store.add_checkpoint(j.id, s.Checkpoint(step=5, path="/c/5"), keep=0)
    assert err.value.field == "keep"
    assert [c.step for c in store.list_checkpoints(j.id)] == [1, 4]


def test_metric_extra_merges_by_key(store):
    j = job(store)
    store.append_metrics(j.id, [
        s.MetricPoint(step=10, train_loss=0.7, extra={"grad_norm": 1.0, "rewards/chosen": 0.2}),
        s.MetricPoint(step=20, train_loss=0.6),
    ])
    store.append_metrics(j.id, [
        s.MetricPoint(step=10, extra={"grad_norm": 0.5, "rewards/margins": 0.1}),
        s.MetricPoint(step=10, eval_loss=0.8),  # no extra: the row's stays
        s.MetricPoint(step=30, extra={"grad_norm": 2.0}),
        s.MetricPoint(step=30, extra={"eval_rewards/accuracies": 0.75}),  # same batch
    ])
    points = {p.step: p for p in store.list_metrics(j.id)}
    assert points[10].extra == {"grad_norm": 0.5, "rewards/chosen": 0.2, "rewards/margins": 0.1}
    assert (points[10].train_loss, points[10].eval_loss) == (0.7, 0.8)
    assert points[20].extra is None
    assert points[30].extra == {"grad_norm": 2.0, "eval_rewards/accuracies": 0.75}


def test_a_carbon_record_rewritten_under_its_id_counts_once(store):
    j = job(store)
    node = {"source": "training", "training_job_id": j.id, "id": "co2_node_a"}
    store.record_carbon(s.CarbonCreate(energy_kwh=0.1, emissions_kg=0.04, **node))
    store.record_carbon(s.CarbonCreate(energy_kwh=0.3, emissions_kg=0.12, **node))  # grew
    store.record_carbon(s.CarbonCreate(energy_kwh=0.3, emissions_kg=0.12, **node))  # repeated
    store.record_carbon(s.CarbonCreate(source="training", training_job_id=j.id,
                                       energy_kwh=0.2, emissions_kg=0.08, id="co2_node_b"))
    rows = store.carbon.list(training_job_id=j.id).items
    assert sorted((r.id, r.energy_kwh) for r in rows) == [("co2_node_a", 0.3),
                                                          ("co2_node_b", 0.2)]
    after = store.training_jobs.get(j.id)
    assert after.energy_kwh == pytest.approx(0.5) and after.emissions_kg == pytest.approx(0.2)
    with pytest.raises(NotFound):  # an unknown job writes nothing
        store.record_carbon(s.CarbonCreate(source="training", training_job_id="job_nope",
                                           energy_kwh=1, emissions_kg=1, id="co2_x"))
    assert store.carbon.list(training_job_id=j.id).total == 2


def test_an_event_repeated_after_a_lost_reply_is_written_once(store):
    j = job(store)
    event = s.JobEvent(message="checkpoint at step 2: s3://b/runs/job/checkpoint-000002")
    assert event.created_at is not None  # stamped where the event is made
    store.add_event(j.id, event)
    store.add_event(j.id, event)  # the same call again (the actor restarted meanwhile)
    store.add_event(j.id, s.JobEvent(message=event.message))  # a new event, same text
    messages = [e["message"] for e in store.list_events(j.id)]
    assert messages.count(event.message) == 2


def test_training_writes_are_marked_safe_to_repeat():
    from catalog.store import CatalogStore, is_idempotent

    for op in (CatalogStore.append_metrics, CatalogStore.add_checkpoint, CatalogStore.add_event,
               CatalogStore.record_carbon):
        assert is_idempotent(op), op.__name__
    assert not is_idempotent(CatalogStore.register_model)

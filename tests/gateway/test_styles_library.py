"""``/v1/prompt-helpers``, ``/v1/theme-helpers``, tags and projects on the deployed
gateway: versions and forks, favourites, built-ins, visibility between two users,
themes' ordered styles, tags on rows, project galleries, and 422s naming the field."""

from __future__ import annotations

import uuid

import httpx
import pytest

from catalog import schemas as s
from tests.gateway.fixtures import assert_error, auth

pytestmark = pytest.mark.ray


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_style(client: httpx.Client, **fields) -> dict:
    body = {"name": unique("style"), "text": "film grain", **fields}
    r = client.post("/v1/prompt-helpers", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_versions_and_an_independent_fork(alice):
    style = make_style(alice, category="photography", placement="prefix")
    assert (style["current_version"], style["user_id"], style["is_builtin"]) == (1, "alice",
                                                                                 False)
    path = f"/v1/prompt-helpers/{style['id']}"
    v2 = alice.post(f"{path}/versions", json={"text": "35mm film", "notes": "sharper"})
    assert v2.status_code == 201, v2.text
    # without a placement the version keeps the current one's
    assert (v2.json()["version"], v2.json()["placement"]) == (2, "prefix")
    assert alice.get(path).json()["current_version"] == 2
    assert [v["text"] for v in alice.get(f"{path}/versions").json()] == ["film grain",
                                                                          "35mm film"]
    assert alice.get(f"{path}/versions/1").json()["text"] == "film grain"
    assert_error(alice.get(f"{path}/versions/9"), 404, "not_found")

    fork = alice.post(f"{path}/fork", json={"name": unique("fork")})
    assert fork.status_code == 201, fork.text
    fork = fork.json()
    assert (fork["forked_from_id"], fork["current_version"], fork["is_public"]) == (
        style["id"], 1, False)
    alice.post(f"{path}/versions", json={"text": "pushed two stops"}).raise_for_status()
    fork_versions = alice.get(f"/v1/prompt-helpers/{fork['id']}/versions").json()
    assert [(v["version"], v["text"]) for v in fork_versions] == [(1, "35mm film")]

    renamed = alice.patch(path, json={"description": "grainy"})
    assert (renamed.json()["description"], renamed.json()["name"]) == ("grainy", style["name"])
    assert alice.delete(f"/v1/prompt-helpers/{fork['id']}").status_code == 204
    assert_error(alice.get(f"/v1/prompt-helpers/{fork['id']}"), 404, "not_found")


def test_builtins_are_visible_to_a_new_user_who_can_favourite_but_not_change_them(
        admin, gateway_url):
    secret = admin.post("/v1/keys", json={"user_id": unique("newbie"), "name": "t"}).json()
    with httpx.Client(base_url=gateway_url, headers=auth(secret["secret"]),
                      timeout=60) as newbie:
        builtins = newbie.get("/v1/prompt-helpers", params={"builtin": True}).json()
        assert builtins["total"] >= 1
        assert all(h["is_builtin"] and h["user_id"] is None for h in builtins["items"])
        builtin = builtins["items"][0]
        path = f"/v1/prompt-helpers/{builtin['id']}"
        assert newbie.get(f"{path}/versions/1").status_code == 200
        assert_error(newbie.patch(path, json={"name": "mine"}), 403, "permission_denied")
        assert_error(newbie.post(f"{path}/versions", json={"text": "x"}), 403,
                     "permission_denied")

        assert newbie.get("/v1/prompt-helpers", params={"favorite": True}).json()["total"] == 0
        for _ in range(2):  # idempotent
            assert newbie.put(f"{path}/favorite").status_code == 204
        favorites = newbie.get("/v1/prompt-helpers", params={"favorite": True}).json()
        assert [h["id"] for h in favorites["items"]] == [builtin["id"]]
        assert newbie.delete(f"{path}/favorite").status_code == 204
        assert newbie.get("/v1/prompt-helpers", params={"favorite": True}).json()["total"] == 0


def test_another_users_private_style_is_403_and_absent_from_their_list(alice, bob):
    private = make_style(alice)
    public = make_style(alice, is_public=True, category=unique("cat"))
    path = f"/v1/prompt-helpers/{private['id']}"
    for response in (bob.get(path), bob.patch(path, json={"name": "x"}), bob.delete(path),
                     bob.get(f"{path}/versions"), bob.post(f"{path}/fork", json={"name": "x"}),
                     bob.put(f"{path}/favorite")):
        assert_error(response, 403, "permission_denied")
    assert_error(bob.get("/v1/prompt-helpers/ph_nope"), 404, "not_found")
    seen = {h["id"] for h in bob.get("/v1/prompt-helpers", params={"page_size": 1000}
                                     ).json()["items"]}
    assert private["id"] not in seen and public["id"] in seen
    # a public style: bob reads and forks it, but may not change it
    by_category = bob.get("/v1/prompt-helpers", params={"category": public["category"]}).json()
    assert [h["id"] for h in by_category["items"]] == [public["id"]]
    fork = bob.post(f"/v1/prompt-helpers/{public['id']}/fork", json={"name": "bobs"}).json()
    assert fork["user_id"] == "bob"
    assert_error(bob.patch(f"/v1/prompt-helpers/{public['id']}", json={"name": "x"}), 403,
                 "permission_denied")


def test_a_theme_keeps_its_styles_in_order_per_version(alice, bob):
    first, second = make_style(alice), make_style(alice)
    created = alice.post("/v1/theme-helpers", json={
        "name": unique("theme"), "text": "moody", "prompt_helper_ids": [second["id"],
                                                                        first["id"]]})
    assert created.status_code == 201, created.text
    theme = created.json()
    assert theme["prompt_helper_ids"] == [second["id"], first["id"]]
    path = f"/v1/theme-helpers/{theme['id']}"
    v2 = alice.post(f"{path}/versions", json={"text": "bright",
                                              "prompt_helper_ids": [first["id"]]})
    assert v2.status_code == 201, v2.text
    assert (v2.json()["version"], v2.json()["prompt_helper_ids"]) == (2, [first["id"]])
    current = alice.get(path).json()
    assert (current["text"], current["prompt_helper_ids"]) == ("bright", [first["id"]])
    versions = alice.get(f"{path}/versions").json()
    assert [v["prompt_helper_ids"] for v in versions] == [[second["id"], first["id"]],
                                                          [first["id"]]]
    # bob may not build on alice's private style, nor on one that does not exist
    for ids in ([first["id"]], ["ph_missing"]):
        err = assert_error(bob.post("/v1/theme-helpers", json={
            "name": unique("theme"), "prompt_helper_ids": ids}), 422, "invalid_argument")
        assert err["field"] == "prompt_helper_ids"
    assert_error(bob.get(path), 403, "permission_denied")


def test_tags_on_a_style_and_the_tag_filter(alice, bob):
    style = make_style(alice)
    tag = unique("noir")
    r = alice.put(f"/v1/prompt-helpers/{style['id']}/tags", json={"tags": [tag, "Film"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"tags": sorted([tag, "Film"])}
    listed = alice.get("/v1/prompt-helpers", params={"tag": tag}).json()
    assert [(h["id"], h["tags"]) for h in listed["items"]] == [(style["id"],
                                                                sorted([tag, "Film"]))]
    own = {t["name"] for t in alice.get("/v1/tags", params={"page_size": 1000}).json()["items"]}
    assert tag in own
    assert tag not in {t["name"] for t in bob.get("/v1/tags").json()["items"]}
    assert alice.put(f"/v1/prompt-helpers/{style['id']}/tags",
                     json={"tags": []}).json() == {"tags": []}
    assert alice.get("/v1/prompt-helpers", params={"tag": tag}).json()["total"] == 0

    assert_error(bob.put(f"/v1/prompt-helpers/{style['id']}/tags", json={"tags": ["x"]}),
                 403, "permission_denied")
    assert_error(alice.put("/v1/images/img_missing/tags", json={"tags": ["x"]}), 404,
                 "not_found")
    err = assert_error(alice.put(f"/v1/prompt-helpers/{style['id']}/tags",
                                 json={"tags": ["no/slash"]}), 422, "invalid_argument")
    assert err["field"] == "tags"
    made = alice.post("/v1/tags", json={"name": unique("t")})
    assert made.status_code == 201, made.text
    assert_error(alice.post("/v1/tags", json={"name": made.json()["name"]}), 409, "conflict")
    assert_error(bob.delete(f"/v1/tags/{made.json()['id']}"), 403, "permission_denied")
    assert alice.delete(f"/v1/tags/{made.json()['id']}").status_code == 204


def test_a_project_holds_the_owners_media_in_order(alice, bob, catalog_store):
    def image(user: str) -> str:
        return catalog_store.images.create(s.ImageCreate(
            prompt="a fox", provider="stability", model="sd3", user_id=user)).id

    mine = [image("alice") for _ in range(3)]
    slug = unique("fox-gallery")
    created = alice.post("/v1/projects", json={"name": "Fox gallery", "slug": slug})
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["slug"] == slug
    assert_error(alice.post("/v1/projects", json={"name": "again", "slug": slug}), 409,
                 "conflict")
    items = f"/v1/projects/{slug}/items"
    for position, image_id in ((1, mine[0]), (0, mine[1]), (None, mine[2])):
        r = alice.post(items, json={"image_id": image_id, "position": position})
        assert r.status_code == 201, r.text
    assert [i["image_id"] for i in alice.get(items).json()] == [mine[1], mine[0], mine[2]]
    assert_error(alice.post(items, json={"image_id": mine[0]}), 409, "conflict")
    assert_error(alice.post(items, json={"image_id": image("bob")}), 403, "permission_denied")
    assert_error(alice.post(items, json={"image_id": "img_missing"}), 404, "not_found")

    # private: bob may not read it; published: he may read but not change it
    assert_error(bob.get(f"/v1/projects/{slug}"), 403, "permission_denied")
    assert_error(bob.get(items), 403, "permission_denied")
    assert project["id"] not in {p["id"] for p in bob.get("/v1/projects").json()["items"]}
    assert alice.patch(f"/v1/projects/{project['id']}",
                       json={"is_published": True}).json()["is_published"] is True
    assert bob.get(f"/v1/projects/{slug}").json()["id"] == project["id"]
    assert_error(bob.delete(f"/v1/projects/{slug}"), 403, "permission_denied")

    first = alice.get(items).json()[0]
    assert alice.delete(f"{items}/{first['id']}").status_code == 204
    assert [i["image_id"] for i in alice.get(items).json()] == [mine[0], mine[2]]
    assert alice.delete(f"/v1/projects/{slug}").status_code == 204
    assert_error(alice.get(f"/v1/projects/{slug}"), 404, "not_found")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/prompt-helpers", {"name": "x", "text": "y", "placement": "sideways"},
     "body.placement"),
    ("/v1/prompt-helpers", {"name": "x", "text": "y", "placements": {"audio": "append"}},
     "body.placements.audio.[key]"),
    ("/v1/projects", {"name": "x", "slug": "Not A Slug"}, "body.slug"),
    ("/v1/projects", {"name": "x", "user_id": "bob"}, "body.user_id"),
])
def test_invalid_bodies_are_422_naming_the_field(alice, path, body, field):
    err = assert_error(alice.post(path, json=body), 422, "invalid_argument")
    assert err["field"] == field

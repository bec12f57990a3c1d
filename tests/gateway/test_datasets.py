"""``/v1/datasets``: upload (raw body and multipart), validation, pagination, ownership."""

from __future__ import annotations

import json

import pytest

from tests.gateway.fixtures import assert_error

pytestmark = pytest.mark.ray

ROWS = [{"messages": [{"role": "user", "content": f"q{i}"},
                      {"role": "assistant", "content": f"a{i}"}]} for i in range(5)]
JSONL = "\n".join(json.dumps(r) for r in ROWS) + "\n"


def upload(client, name: str, body: str = JSONL):
    return client.post("/v1/datasets", params={"name": name}, content=body.encode(),
                       headers={"Content-Type": "application/jsonl"})


def test_upload_raw_body_then_get_preview_and_delete(alice):
    r = upload(alice, "raw-chat")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["format"], ds["num_rows"], ds["user_id"]) == ("openai", 5, "alice")
    assert alice.get(f"/v1/datasets/{ds['id']}").json()["name"] == "raw-chat"
    preview = alice.get(f"/v1/datasets/{ds['id']}/preview", params={"offset": 1, "limit": 2})
    assert preview.json()["rows"] == ROWS[1:3]
    assert preview.json()["total"] == 5
    assert alice.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    assert_error(alice.get(f"/v1/datasets/{ds['id']}"), 404, "not_found")


def test_upload_multipart_takes_name_from_the_form(alice):
    files = {"file": ("my-set.jsonl", JSONL.encode(), "application/jsonl")}
    r = alice.post("/v1/datasets", files=files, data={"description": "from a form"})
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["description"]) == ("my-set", "from a form")


def test_bad_rows_are_422_with_line_details_and_nothing_is_stored(alice):
    before = alice.get("/v1/datasets", params={"name": "broken"}).json()["total"]
    err = assert_error(upload(alice, "broken", JSONL + "{not json\n"), 422, "invalid_argument")
    assert err["details"] and err["details"][0]["line"] == 6
    assert alice.get("/v1/datasets", params={"name": "broken"}).json()["total"] == before


def test_upload_rejects_empty_unnamed_too_large_and_odd_types(alice):
    assert_error(upload(alice, "empty", ""), 422, "invalid_argument")
    r = alice.post("/v1/datasets", content=JSONL.encode(),
                   headers={"Content-Type": "application/jsonl"})
    assert assert_error(r, 422, "invalid_argument")["field"] == "name"
    assert_error(upload(alice, "huge", JSONL * 1000), 413, "payload_too_large")
    r = alice.post("/v1/datasets", params={"name": "x"}, content=b"<a/>",
                   headers={"Content-Type": "application/xml"})
    assert_error(r, 422, "invalid_argument")


def test_list_paginates_with_cursor_and_total(alice):
    for _ in range(3):
        assert upload(alice, "paged").status_code == 201
    first = alice.get("/v1/datasets", params={"name": "paged", "page_size": 2}).json()
    assert (first["total"], len(first["items"])) == (3, 2)
    assert [d["version"] for d in first["items"]] == [3, 2]
    second = alice.get("/v1/datasets", params={"name": "paged", "page_size": 2,
                                               "cursor": first["next_cursor"]}).json()
    assert [d["version"] for d in second["items"]] == [1]
    assert second["next_cursor"] is None
    assert_error(alice.get("/v1/datasets", params={"page_size": 0}), 422, "invalid_argument")
    assert_error(alice.get("/v1/datasets", params={"cursor": "!!"}), 422, "invalid_argument")


def test_users_see_only_their_own_and_admins_all(alice, bob, admin):
    ds = upload(alice, "private").json()
    assert_error(bob.get(f"/v1/datasets/{ds['id']}"), 403, "permission_denied")
    assert_error(bob.get(f"/v1/datasets/{ds['id']}/preview"), 403, "permission_denied")
    assert_error(bob.delete(f"/v1/datasets/{ds['id']}"), 403, "permission_denied")
    assert all(d["user_id"] == "bob" for d in bob.get("/v1/datasets").json()["items"])
    assert admin.get(f"/v1/datasets/{ds['id']}").status_code == 200
    ids = {d["id"] for d in admin.get("/v1/datasets", params={"page_size": 1000}).json()["items"]}
    assert ds["id"] in ids

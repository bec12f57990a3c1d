"""Text longer than the catalog holds, on every create and update route of the deployed
gateway: 422 in the one error shape naming the field, never a 5xx, nothing stored (a
5,000-character dataset name was a 500). The longest value that fits is stored whole."""

from __future__ import annotations

import json

import pytest

from catalog.schemas.common import ID_LENGTH, LABEL_LENGTH, NAME_LENGTH
from tests.gateway.fixtures import assert_error

pytestmark = pytest.mark.ray

NAME = "n" * (NAME_LENGTH + 1)
LABEL = "l" * (LABEL_LENGTH + 1)
ID = "i" * (ID_LENGTH + 1)
TEXT = "t" * 10001  # the free-text fields' bound (prompts, helper texts, descriptions)
HELPER = {"name": "h", "text": "t"}
JOB = {"name": "j", "base_model_id": "mdl_x", "dataset_id": "ds_x"}

#: (method, path, JSON body, the field the 422 names). Ids in paths need not exist: a
#: body is validated before the route looks anything up.
CASES = [
    ("POST", "/v1/keys", {"user_id": ID, "name": "k"}, "body.user_id"),
    ("POST", "/v1/keys", {"user_id": "u", "name": NAME}, "body.name"),
    ("POST", "/v1/models/import", {"name": NAME}, "body.name"),
    ("POST", "/v1/models/mdl_x/merge", {"name": NAME}, "body.name"),
    ("POST", "/v1/training/jobs", {**JOB, "name": NAME}, "body.name"),
    ("POST", "/v1/training/jobs", {**JOB, "output_model_name": NAME},
     "body.output_model_name"),
    ("POST", "/v1/training/jobs", {**JOB, "base_model_id": ID}, "body.base_model_id"),
    ("POST", "/v1/training/jobs", {**JOB, "eval_dataset_id": ID}, "body.eval_dataset_id"),
    ("POST", "/v1/batches", {"input_file_id": ID, "endpoint": "/v1/chat/completions"},
     "body.input_file_id"),
    ("POST", "/v1/prompt-helpers", {**HELPER, "name": NAME}, "body.name"),
    ("POST", "/v1/prompt-helpers", {**HELPER, "category": LABEL}, "body.category"),
    ("POST", "/v1/prompt-helpers", {**HELPER, "text": TEXT}, "body.text"),
    ("PATCH", "/v1/prompt-helpers/ph_x", {"name": NAME}, "body.name"),
    ("PATCH", "/v1/prompt-helpers/ph_x", {"category": LABEL}, "body.category"),
    ("POST", "/v1/prompt-helpers/ph_x/versions", {"text": TEXT}, "body.text"),
    ("POST", "/v1/prompt-helpers/ph_x/fork", {"name": NAME}, "body.name"),
    ("POST", "/v1/theme-helpers", {"name": NAME}, "body.name"),
    ("POST", "/v1/theme-helpers", {"name": "t", "category": LABEL}, "body.category"),
    ("POST", "/v1/theme-helpers", {"name": "t", "notes": TEXT}, "body.notes"),
    ("PATCH", "/v1/theme-helpers/th_x", {"name": NAME}, "body.name"),
    ("POST", "/v1/theme-helpers/th_x/versions", {"negative_text": TEXT},
     "body.negative_text"),
    ("POST", "/v1/theme-helpers/th_x/fork", {"name": NAME}, "body.name"),
    ("POST", "/v1/tags", {"name": LABEL}, "body.name"),
    ("POST", "/v1/projects", {"name": NAME}, "body.name"),
    ("POST", "/v1/projects", {"name": "p", "slug": "s" * (NAME_LENGTH + 1)}, "body.slug"),
    ("POST", "/v1/projects", {"name": "p", "description": TEXT}, "body.description"),
    ("PATCH", "/v1/projects/p", {"name": NAME}, "body.name"),
    ("PATCH", "/v1/projects/p", {"description": TEXT}, "body.description"),
    ("POST", "/v1/projects/p/items", {"image_id": ID}, "body.image_id"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), CASES,
                         ids=[f"{m} {p} {f}" for m, p, _, f in CASES])
def test_over_long_text_is_422_naming_the_field(admin, method, path, body, field):
    err = assert_error(admin.request(method, path, json=body), 422, "invalid_argument")
    assert err["field"] == field
    assert "at most" in err["message"]


def test_an_over_long_tag_on_a_row_is_422_naming_tags(alice):
    helper = alice.post("/v1/prompt-helpers", json={"name": "lengths", "text": "t"}).json()
    try:
        r = alice.put(f"/v1/prompt-helpers/{helper['id']}/tags", json={"tags": [LABEL]})
        assert assert_error(r, 422, "invalid_argument")["field"] == "tags"
        assert alice.get(f"/v1/prompt-helpers/{helper['id']}").json()["tags"] == []
    finally:
        alice.delete(f"/v1/prompt-helpers/{helper['id']}")


ROWS = "".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n"
               for i in range(3)).encode()


def _datasets(client) -> int:
    return client.get("/v1/datasets", params={"page_size": 1}).json()["total"]


def test_an_over_long_dataset_name_is_422_from_the_form_the_query_or_the_file(alice):
    before = _datasets(alice)
    files = {"file": ("rows.jsonl", ROWS, "application/jsonl")}
    r = alice.post("/v1/datasets", files=files, data={"name": "x" * 5000})  # the issue's
    err = assert_error(r, 422, "invalid_argument")
    assert (err["field"], err["message"]) == ("name", "name: at most 200 characters, got 5000")

    named_by_file = {"file": ("f" * 250 + ".jsonl", ROWS, "application/jsonl")}
    err = assert_error(alice.post("/v1/datasets", files=named_by_file), 422, "invalid_argument")
    assert err["field"] == "name" and "the file's name" in err["message"]

    r = alice.post("/v1/datasets", params={"name": NAME}, content=ROWS,
                   headers={"Content-Type": "application/jsonl"})
    assert assert_error(r, 422, "invalid_argument")["field"] == "query.name"
    assert _datasets(alice) == before


def test_the_longest_dataset_name_is_stored_whole_whatever_the_file_is_called(alice):
    """A name of NAME_LENGTH characters fits; a file name with an extension too long for
    a file system (it was part of the upload's temporary file name) is not a 500."""
    name = "d" * NAME_LENGTH
    files = {"file": ("rows." + "x" * 300, ROWS, "application/octet-stream")}
    r = alice.post("/v1/datasets", files=files, data={"name": name})
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["num_rows"]) == (name, 3)
    assert alice.delete(f"/v1/datasets/{r.json()['id']}").status_code == 204

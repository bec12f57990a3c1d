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


# --------------------------------------------------------------------------- dataset files

QA = [{"question": f"What is {i}?", "answer": f"It is {i}.", "topic": "numbers"}
      for i in range(4)]
QA_TWIN = [{"instruction": f"What is {i}?", "output": f"It is {i}.", "topic": "numbers"}
           for i in range(4)]


def csv_text(rows: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def parquet_bytes(rows: list[dict]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def test_csv_and_parquet_uploads_store_the_rows_of_their_jsonl_twin(alice):
    mapping = json.dumps({"question": "instruction", "answer": "output"})
    files = {"file": ("faq.csv", csv_text(QA).encode(), "text/csv")}
    r = alice.post("/v1/datasets", files=files, data={"column_mapping": mapping})
    assert r.status_code == 201, r.text
    from_csv = r.json()
    r = alice.post("/v1/datasets", content=parquet_bytes(QA),
                   params={"name": "faq-pq", "column_mapping": mapping},
                   headers={"Content-Type": "application/vnd.apache.parquet"})
    assert r.status_code == 201, r.text
    from_parquet = r.json()
    twin = upload(alice, "faq-twin", "".join(json.dumps(row) + "\n" for row in QA_TWIN)).json()
    for ds, file_format in ((from_csv, "csv"), (from_parquet, "parquet"), (twin, "jsonl")):
        got = alice.get(f"/v1/datasets/{ds['id']}").json()
        assert (got["file_format"], got["format"], got["num_rows"]) == (file_format, "alpaca", 4)
        assert got["schema"] == {"columns": ["instruction", "output", "topic"],
                                 "sample": QA_TWIN[0],
                                 "required_columns": ["instruction", "output"]}
        assert got["statistics"] == {
            "num_rows": 4, "avg_input_length": 10.0, "avg_output_length": 8.0,
            "max_length": 18, "min_length": 18, "total_tokens": None,
            "length_unit": "characters", "tokenizer": None}
        rows = alice.get(f"/v1/datasets/{ds['id']}/preview", params={"limit": 10}).json()
        assert rows["rows"] == QA_TWIN, file_format
    assert from_csv["name"] == "faq"


def test_a_bad_csv_row_is_named_by_the_users_file_line_and_column(alice):
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": ""}]
    files = {"file": ("my-data.csv", csv_text(rows).encode(), "text/csv")}
    err = assert_error(alice.post("/v1/datasets", files=files), 422, "invalid_argument")
    assert err["details"] == [{"line": 3, "field": "output", "message": "must not be empty"}]
    assert err["message"].startswith("my-data.csv: 1 problem(s); first at line 3, column "
                                     "'output'")
    r = alice.post("/v1/datasets", params={"name": "pq", "filename": "rows.parquet"},
                   content=parquet_bytes(rows),
                   headers={"Content-Type": "application/octet-stream"})
    err = assert_error(r, 422, "invalid_argument")
    assert err["details"] == [{"row": 2, "field": "output", "message": "must not be empty"}]
    assert err["message"].startswith("rows.parquet: ")


def test_bad_mapping_and_unknown_base_model_are_422_naming_the_field(alice):
    bad = alice.post("/v1/datasets", params={"name": "x", "column_mapping": "{nope"},
                     content=csv_text(QA).encode(), headers={"Content-Type": "text/csv"})
    assert assert_error(bad, 422, "invalid_argument")["field"] == "column_mapping"
    missing = alice.post("/v1/datasets", params={"name": "x", "base_model_id": "mdl_missing"},
                         content=JSONL.encode(), headers={"Content-Type": "application/jsonl"})
    assert assert_error(missing, 422, "invalid_argument")["field"] == "base_model_id"


def test_cli_shows_a_dataset_with_its_schema_and_statistics(gateway_url, keys, alice):
    from typer.testing import CliRunner

    from garden.cli import app

    ds = upload(alice, "shown").json()
    result = CliRunner().invoke(app, ["--api-url", gateway_url, "--api-key", keys.alice,
                                      "datasets", "show", ds["id"]])
    assert result.exit_code == 0, result.output
    for text in (ds["id"], "shown v1", "openai", "jsonl", "schema", "messages", "yes",
                 "statistics (characters)", "avg prompt length", "2.0"):
        assert text in result.output, text

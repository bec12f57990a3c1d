"""The media routes on a real Ray Serve app (ingress + MediaRouter deployment) with the
catalog actor: auth, 422s naming the field, 503 naming the token variable, signed
webhooks over HTTP driving a prediction to completion, list and cancel."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.serve_apps.media.conftest import make_config

pytestmark = pytest.mark.ray

ADMIN_KEY = "gk_media_test_" + uuid.uuid4().hex
PREFIX = "/media-test"


@pytest.fixture(scope="module")
def media_url(catalog_handle, serve_url, fakes, tmp_path_factory):
    from ray import serve

    from serve_apps.media import build_media_app

    home = tmp_path_factory.mktemp("media-serve")
    base = f"{serve_url}{PREFIX}"
    config = make_config(fakes, home / "media", missing=("runway",), webhook_url=base,
                         poll_interval_s=600.0)  # replicate jobs advance by webhook only
    app = build_media_app(config, runtime_env={"env_vars": {"GARDEN_ADMIN_KEY": ADMIN_KEY}})
    serve.run(app, name="media-test", route_prefix=PREFIX)
    yield base
    serve.delete("media-test")


@pytest.fixture
def client(media_url):
    with httpx.Client(base_url=media_url, timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def test_routes_need_an_api_key(media_url):
    r = httpx.post(f"{media_url}/v1/images/generations", json={"prompt": "x"}, timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(("body", "field"), [
    ({"prompt": "x", "aspect_ratio": "7:3"}, "body.aspect_ratio"),
    ({"prompt": "x", "size": "10x10"}, "body.size"),
    ({"prompt": "x", "output_format": "gif"}, "body.output_format"),
    ({"prompt": ""}, "body.prompt"),
])
def test_invalid_image_requests_are_422_naming_the_field(client, body, field):
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == field


#: Over-long text on each media route that creates or changes a row: (method, path, JSON
#: body, field). A body is validated before the row in the path is looked up.
TOO_LONG = [
    ("POST", "/v1/images/generations", {"prompt": "x", "model": "m" * 201}, "body.model"),
    ("POST", "/v1/images/generations", {"prompt": "p" * 10001}, "body.prompt"),
    ("POST", "/v1/images/generations", {"prompt": "x", "style_preset": "s" * 65},
     "body.style_preset"),
    ("POST", "/v1/images/img_x/upscale", {"model": "m" * 201}, "body.model"),
    ("POST", "/v1/images/img_x/edits", {"prompt": "x", "model": "m" * 201}, "body.model"),
    ("POST", "/v1/videos", {"prompt": "x", "model": "m" * 201}, "body.model"),
    ("POST", "/v1/videos", {"prompt": "x", "image_id": "i" * 65}, "body.image_id"),
    ("PATCH", "/v1/images/img_x", {"title": "t" * 201}, "body.title"),
    ("PATCH", "/v1/videos/vid_x", {"caption": "c" * 1001}, "body.caption"),
    ("PATCH", "/v1/source-images/src_x", {"description": "d" * 10001}, "body.description"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), TOO_LONG,
                         ids=[f"{m} {p} {f}" for m, p, _, f in TOO_LONG])
def test_over_long_text_is_422_naming_the_field(client, method, path, body, field):
    r = client.request(method, path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_an_over_long_upload_title_is_422_naming_it(client):
    files = {"file": ("fern.png", b"\x89PNG\r\n\x1a\n", "image/png")}
    r = client.post("/v1/source-images", files=files, data={"title": "t" * 201})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "body.title"


def test_generate_then_get_image(client):
    r = client.post("/v1/images/generations", json={"prompt": "a fern", "provider": "stability",
                                                    "aspect_ratio": "1:1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["prediction"]["status"] == "succeeded"
    got = client.get(f"/v1/images/{body['image']['id']}").json()
    assert got["image"]["files"][0]["mime_type"] == "image/png"
    assert got["image"]["width"] == 64
    assert client.get("/v1/images/img_missing").status_code == 404


def test_missing_token_is_503_naming_the_variable(client):
    r = client.post("/v1/videos", json={"prompt": "tide", "provider": "runway"})
    assert r.status_code == 503
    assert "RUNWAYML_API_SECRET" in r.json()["error"]["message"]
    r = client.post("/v1/videos", json={"prompt": "tide", "ratio": "2:1"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.ratio"


def test_replicate_webhooks_drive_the_prediction(client, fakes):
    r = client.post("/v1/images/generations", json={"prompt": "a dune",
                                                    "provider": "replicate"})
    assert r.status_code == 201, r.text
    image_id = r.json()["image"]["id"]
    deadline = time.monotonic() + 60  # a bound on waiting, not a speed target
    while time.monotonic() < deadline:
        got = client.get(f"/v1/images/{image_id}").json()
        if got["prediction"]["status"] == "succeeded":
            break
        time.sleep(0.2)
    assert got["prediction"]["status"] == "succeeded"  # polling is 600 s apart: webhooks did it
    assert got["image"]["files"][0]["width"] == 96
    assert fakes.replicate.state.calls["get"] == 0
    assert fakes.replicate.state.calls["webhook_sent"] >= 1


def test_bad_webhook_signature_is_401(client, fakes):
    r = httpx.post(f"{client.base_url}v1/webhooks/replicate",
                   content=b'{"id": "x", "status": "succeeded"}',
                   headers={"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
                            "webhook-signature": "v1,AAAA"}, timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


def test_list_and_cancel_predictions(client):
    r = client.post("/v1/images/generations", json={"prompt": "[slow] a tower",
                                                    "provider": "replicate"})
    pred_id = r.json()["prediction"]["id"]
    r = client.post(f"/v1/predictions/{pred_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert client.post(f"/v1/predictions/{pred_id}/cancel").status_code == 409
    assert client.get(f"/v1/predictions/{pred_id}").json()["status"] == "canceled"
    assert client.get("/v1/predictions/pred_missing").status_code == 404
    page = client.get("/v1/predictions", params={"status": "canceled"}).json()
    assert pred_id in [p["id"] for p in page["items"]]
    bad = client.get("/v1/predictions", params={"status": "done"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "query.status"


def test_client_library_drives_images_and_predictions(media_url):
    from garden import Client
    from garden.errors import ConflictError, NotFoundError

    with Client(media_url, ADMIN_KEY) as garden:
        made = garden.images.generate("a reed", provider="stability", aspect_ratio="1:1")
        assert made.prediction.status == "succeeded"
        assert garden.images.get(made.image.id).image.files[0].mime_type == "image/png"
        got = garden.predictions.get(made.prediction.id)
        assert got.provider == "stability" and got.status == "succeeded"

        slow = garden.images.generate("[slow] a mast", provider="replicate")
        assert garden.predictions.cancel(slow.prediction.id).status == "canceled"
        with pytest.raises(ConflictError):
            garden.predictions.cancel(slow.prediction.id)
        with pytest.raises(NotFoundError):
            garden.predictions.get("pred_missing")
        canceled = garden.predictions.list(status="canceled", page_size=200)
        assert slow.prediction.id in [p.id for p in canceled.items]
        assert made.prediction.id not in [p.id for p in canceled.items]

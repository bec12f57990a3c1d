"""Fixtures shared by the gateway, client and CLI tests: the gateway deployed on the
session's Ray Serve, with an admin key and two user keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx
import pytest

ADMIN_KEY = "gk_admin_" + secrets.token_hex(8)
#: The session gateway's reconciler period, s (tests/gateway/test_reconcile.py waits on it).
RECONCILE_PERIOD_S = 5.0


@dataclass
class Keys:
    admin: str
    alice: str
    bob: str


@pytest.fixture(scope="session")
def gateway_url(serve_url, catalog_handle, ray_job_address) -> str:
    """Base URL of the gateway app (route prefix ``/``) on the shared Serve instance; its
    heavy work runs as Ray tasks (:class:`cluster.work.RayWork`), as ``cluster.deploy``
    deploys it."""
    from ray import serve

    from cluster.work import RayWork
    from serve_apps.gateway import GatewayConfig, build_gateway_app

    config = GatewayConfig(max_upload_bytes=64 * 1024, dashboard_url=ray_job_address,
                           reconcile_period_s=RECONCILE_PERIOD_S,
                           env_vars={"GARDEN_ADMIN_KEY": ADMIN_KEY})
    work = RayWork(dashboard_url=ray_job_address)
    serve.run(build_gateway_app(config, work), name="gateway", route_prefix="/")
    return serve_url


@pytest.fixture(scope="session")
def keys(gateway_url) -> Keys:
    """The bootstrap admin key and fresh keys for users alice and bob."""
    out = {}
    for user in ("alice", "bob"):
        r = httpx.post(f"{gateway_url}/v1/keys", json={"user_id": user, "name": "tests"},
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
        r.raise_for_status()
        out[user] = r.json()["secret"]
    return Keys(admin=ADMIN_KEY, **out)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def admin(gateway_url, keys):
    with httpx.Client(base_url=gateway_url, headers=auth(keys.admin), timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def alice(gateway_url, keys):
    with httpx.Client(base_url=gateway_url, headers=auth(keys.alice), timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def bob(gateway_url, keys):
    with httpx.Client(base_url=gateway_url, headers=auth(keys.bob), timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def anon(gateway_url):
    with httpx.Client(base_url=gateway_url, timeout=60) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """The response is ``status`` in the ErrorResponse shape with ``code``; returns the body."""
    from catalog.schemas import ErrorResponse

    assert response.status_code == status, response.text
    body = ErrorResponse.model_validate(response.json())
    assert body.error.code == code
    return response.json()["error"]

"""Auth (401 vs 403, API keys), /health, /v1/system and the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.fixtures import assert_error, auth

pytestmark = pytest.mark.ray


def test_health_needs_no_key_and_reports_components(anon):
    r = anon.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] in ("healthy", "degraded")
    assert body["components"]["database"]["status"] == "healthy"
    assert body["components"]["ray"]["status"] == "healthy"
    assert body["components"]["api"]["status"] == "healthy"


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/models", "/v1/training/jobs",
                                  "/v1/carbon/summary", "/v1/system", "/v1/keys",
                                  "/v1/whoami"])
def test_every_route_but_health_needs_a_key(anon, path):
    r = anon.get(path)
    assert_error(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_unknown_and_malformed_keys_are_401(anon):
    for header in ("Bearer gk_nope", "Basic abc", "Bearer"):
        r = anon.get("/v1/datasets", headers={"Authorization": header})
        assert_error(r, 401, "unauthenticated")


def test_only_admins_create_keys_and_users_see_their_own(alice, admin, gateway_url):
    assert_error(alice.post("/v1/keys", json={"user_id": "alice", "name": "x"}),
                 403, "permission_denied")
    created = admin.post("/v1/keys", json={"user_id": "carol", "name": "ci", "role": "user"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert created.json()["key"]["prefix"] == secret[:8]
    mine = alice.get("/v1/keys").json()
    assert {k["user_id"] for k in mine["items"]} == {"alice"}
    assert admin.get("/v1/keys").json()["total"] >= 3
    # carol's key works until deleted; alice may not delete it
    key_id = created.json()["key"]["id"]
    assert httpx.get(f"{gateway_url}/v1/keys", headers=auth(secret)).status_code == 200
    assert_error(alice.delete(f"/v1/keys/{key_id}"), 403, "permission_denied")
    assert admin.delete(f"/v1/keys/{key_id}").status_code == 204
    # a replica trusts a key it has seen for the cache TTL, then asks the catalog again
    from serve_apps.cache import CACHE_TTL_S
    from tests.conftest import wait_for

    def refused() -> httpx.Response | None:
        r = httpx.get(f"{gateway_url}/v1/keys", headers=auth(secret))
        return r if r.status_code == 401 else None

    assert_error(wait_for(refused, CACHE_TTL_S + 5, "the deleted key refused"),
                 401, "unauthenticated")
    assert_error(admin.delete(f"/v1/keys/{key_id}"), 404, "not_found")


def test_key_create_validation_is_422_naming_the_field(admin):
    err = assert_error(admin.post("/v1/keys", json={"user_id": "", "name": "x"}),
                       422, "invalid_argument")
    assert err["field"] == "body.user_id"
    err = assert_error(admin.post("/v1/keys", json={"user_id": "u", "name": "x",
                                                    "role": "root"}), 422, "invalid_argument")
    assert err["field"] == "body.role"


def test_system_reports_resources_storage_and_versions(alice):
    body = alice.get("/v1/system").json()
    assert body["cpus"]["total"] > 0
    assert body["gpus"]["total"] == 0
    assert body["storage"]["free_bytes"] > 0
    assert body["versions"]["ray"].startswith("2.")
    assert body["database"] == "sqlite"
    gateway = body["serve"]["gateway"]
    assert gateway["status"] == "RUNNING"
    assert gateway["deployments"]["Gateway"]["replicas"]["RUNNING"] >= 1
    assert body["dashboard_url"].startswith("http://127.0.0.1:")


def test_whoami_names_the_keys_user_and_role(alice, admin, keys):
    me = alice.get("/v1/whoami").json()
    assert me["user_id"] == "alice" and me["role"] == "user"
    assert me["key_id"].startswith("key_")
    boot = admin.get("/v1/whoami").json()
    assert boot["role"] == "admin" and boot["key_id"] is None


def test_openapi_lists_every_route_with_bearer_auth(anon):
    doc = anon.get("/openapi.json").json()
    for path in ("/health", "/v1/datasets", "/v1/datasets/{dataset_id}/preview",
                 "/v1/models/import", "/v1/training/jobs/{job_id}/events",
                 "/v1/carbon/export.csv", "/v1/keys"):
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_unknown_route_is_404_in_the_error_shape(alice):
    assert_error(alice.get("/v1/nothing"), 404, "not_found")


def test_admin_key_is_never_put_in_a_runtime_env(monkeypatch):
    """runtime_envs are shown on the Ray dashboard: the bootstrap key must reach replicas
    through their node's environment, not the deployment's options."""
    from serve_apps.gateway import GatewayConfig
    from serve_apps.gateway.builder import replica_env

    monkeypatch.setenv("GARDEN_ADMIN_KEY", "gk_secret_deployer_key")
    monkeypatch.setenv("GARDEN_HOME", "/srv/garden")
    env = replica_env(GatewayConfig())
    assert "GARDEN_ADMIN_KEY" not in env and env["GARDEN_HOME"] == "/srv/garden"
    explicit = replica_env(GatewayConfig(env_vars={"GARDEN_ADMIN_KEY": "gk_chosen"}))
    assert explicit["GARDEN_ADMIN_KEY"] == "gk_chosen"

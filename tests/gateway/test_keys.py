"""``/v1/keys`` limits: requests and tokens per minute and a token budget, set at creation
and changed (or cleared) by admins."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.gateway.fixtures import assert_error, auth

pytestmark = pytest.mark.ray


def test_a_key_is_created_with_limits_and_shows_them(admin, gateway_url):
    user = f"erin-{uuid.uuid4().hex[:6]}"
    created = admin.post("/v1/keys", json={"user_id": user, "name": "limited",
                                           "rpm_limit": 60, "tpm_limit": 10_000,
                                           "token_budget": 1_000_000})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert (key["rpm_limit"], key["tpm_limit"], key["token_budget"], key["tokens_used"]) == (
        60, 10_000, 1_000_000, 0)
    # the owner reads their key, limits included; another user may not
    with httpx.Client(base_url=gateway_url, headers=auth(created.json()["secret"]),
                      timeout=60) as owner:
        assert owner.get(f"/v1/keys/{key['id']}").json()["rpm_limit"] == 60
        assert owner.get("/v1/keys").json()["items"][0]["token_budget"] == 1_000_000
    unlimited = admin.post("/v1/keys", json={"user_id": user, "name": "free"}).json()["key"]
    assert (unlimited["rpm_limit"], unlimited["tpm_limit"], unlimited["token_budget"]) == (
        None, None, None)


@pytest.mark.parametrize("field", ["rpm_limit", "tpm_limit", "token_budget"])
def test_limits_below_one_or_past_the_column_are_422(admin, field):
    for value in (0, -5, 2**63):
        err = assert_error(admin.post("/v1/keys", json={"user_id": "u", "name": "x",
                                                        field: value}),
                           422, "invalid_argument")
        assert err["field"] == f"body.{field}"


def test_admins_set_and_clear_limits_and_others_may_not(admin, alice, bob):
    key = admin.post("/v1/keys", json={"user_id": "alice", "name": "patched",
                                       "rpm_limit": 5, "tpm_limit": 50}).json()["key"]
    path = f"/v1/keys/{key['id']}"
    changed = admin.patch(path, json={"rpm_limit": 10, "token_budget": 500})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["rpm_limit"], changed.json()["tpm_limit"],
            changed.json()["token_budget"]) == (10, 50, 500)  # tpm_limit left as it was
    cleared = admin.patch(path, json={"tpm_limit": None}).json()
    assert (cleared["rpm_limit"], cleared["tpm_limit"], cleared["token_budget"]) == (
        10, None, 500)
    assert admin.patch(path, json={}).json()["rpm_limit"] == 10
    # the owner reads it but may not change it; another user may not read it
    assert alice.get(path).json()["token_budget"] == 500
    assert_error(alice.patch(path, json={"rpm_limit": None}), 403, "permission_denied")
    assert_error(bob.get(path), 403, "permission_denied")
    assert_error(admin.patch(path, json={"rpm_limit": 0}), 422, "invalid_argument")
    assert_error(admin.patch(path, json={"name": "renamed"}), 422, "invalid_argument")
    assert_error(admin.patch("/v1/keys/key_missing", json={"rpm_limit": 1}),
                 404, "not_found")

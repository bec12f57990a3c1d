from tests.gateway.fixtures import admin, alice, anon, bob, gateway_url, keys  # noqa: F401

"""Fixtures of the batch tests: the gateway, its keys, and the base model and PEFT adapter
of the LLM app's tests (one session catalog)."""

from tests.gateway.fixtures import admin, alice, anon, bob, gateway_url, keys  # noqa: F401
from tests.serve_apps.llm.conftest import (  # noqa: F401
    adapter_folder,
    adapter_model,
    base_model,
    llm_catalog,
)

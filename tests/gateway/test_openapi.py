"""The gateway's OpenAPI document tells the truth: schemathesis generates requests for
every operation from the document served by the deployed gateway and checks that no
answer is a server error, every status and content type is one the operation documents,
and every body is valid by the schema documented for its status; every operation of the
document is tried (none excluded); and every route (media routes included) documents the
error statuses with the one error schema."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serve_apps.gateway import GatewayConfig, create_app
from tests.conftest import TEST_ADMIN_KEY
from tests.gateway.fixtures import auth
from tests.serve_apps.media.conftest import fakes, make_config  # noqa: F401 (fakes: fixture)

#: Examples per operation and generation mode (positive: valid by the document;
#: negative: invalid on purpose). ``GARDEN_FUZZ_EXAMPLES`` raises it for a longer hunt.
EXAMPLES = int(os.environ.get("GARDEN_FUZZ_EXAMPLES", "15"))

#: Operations fuzzed with a user's key only, and why: as an admin each generated request
#: could do heavy work on the session's cluster.
USER_ONLY = {
    # an admin's import with no "source" converts and registers the bundled SmolLM2
    # (a minute of CPU per request); a user gets 403 before anything runs
    ("POST", "/v1/models/import"): "imports the bundled base model",
}
#: The dataset upload: every parseable upload runs a Ray task that validates and stores
#: the file, so its generated file (the multipart part, or the raw body) is replaced by
#: one of :data:`DATASET_FILES`, which keeps each example one quick task.
UPLOAD = ("POST", "/v1/datasets")
#: Small dataset files, valid and not: JSONL and a semicolon CSV that register, rows of
#: no known format, broken JSON, an empty file, bytes that are not UTF-8.
DATASET_FILES = st.sampled_from([
    b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n',
    b"instruction;input;output\r\nSay hi;;Hello\r\n",
    b'{"question": "q"}\n{"messages": []}\n',
    b'[{"instruction": "q", "output": "a"}',
    b"",
    b"\xff\xfe\x00\x81 not text",
])

@schemathesis.check
def no_server_error_but_unavailable(ctx, response, case):
    """schemathesis' ``not_a_server_error``, except the documented 503 ``unavailable``
    (a provider that is not configured, the catalog restarting): a valid request the
    server cannot serve now, in the one error shape (checked by the schema checks)."""
    if response.status_code == 503:
        body = response.json()
        assert body["error"]["code"] == "unavailable", body
        return None
    return not_a_server_error(ctx, response, case)


#: What every answer is checked for: no 5xx (but a documented 503), a documented status,
#: a documented content type, and a body valid by the documented schema of that status.
CHECKS = [no_server_error_but_unavailable, status_code_conformance,
          content_type_conformance, response_schema_conformance]

#: What each route documents besides its success status.
ERROR_STATUSES = {"401", "403", "404", "409", "422", "429", "503"}


@dataclass
class Outcome:
    """What the fuzz run saw: requests per operation, statuses, failures."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _with_file(case, data: bytes):
    """``case`` with ``data`` as its uploaded file: the multipart ``file`` part where the
    body is a form that has one, else the whole body."""
    if not isinstance(case.body, dict):
        case.body = data
    elif "file" in case.body:
        case.body["file"] = data
    return case


def _fuzz(operation, keys: list[str], mode: GenerationMode, outcome: Outcome) -> None:
    label = f"{operation.method.upper()} {operation.path} [{mode.value}]"

    # the key is a fixed header: negative cases make the operation's own input invalid
    # (the 401s of a missing or wrong key are tests/gateway/test_auth_system.py's)
    cases = st.sampled_from(keys).flatmap(
        lambda key: operation.as_strategy(generation_mode=mode, headers=auth(key)))
    if (operation.method.upper(), operation.path) == UPLOAD:
        cases = cases.flatmap(lambda case: DATASET_FILES.map(partial(_with_file, case)))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case):
        outcome.requests[label] += 1
        response = case.call(timeout=60)
        outcome.statuses[mode.value, response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # negative mode, no input to make invalid (/health, /v1/system)
        assert mode is GenerationMode.NEGATIVE and not outcome.requests[label], label
    except Exception as exc:  # a failed check: keep going, report every operation's
        outcome.failures.append(f"{label}: {exc}")


def _operations(schema, paths: str = "/") -> list:
    """The operations of ``schema`` whose path starts with ``paths``."""
    return [op for op in (result.ok() for result in schema.get_all_operations())
            if op.path.startswith(paths)]


def _fuzz_schema(schema, user: str, admin: str, *, paths: str = "/") -> Outcome:
    """Fuzz every operation of ``schema`` under ``paths``, in both modes, with the user's
    and the admin's key (the user's only for :data:`USER_ONLY`)."""
    outcome = Outcome()
    for operation in _operations(schema, paths):
        route = (operation.method.upper(), operation.path)
        callers = [user] if route in USER_ONLY else [user, admin]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, callers, mode, outcome)
    total = sum(outcome.requests.values())
    print(f"\nschemathesis: {total} requests over {len(outcome.requests)} operation/modes; "
          f"statuses {dict(sorted(outcome.statuses.items()))}")
    return outcome


def _positive(outcome: Outcome) -> int:
    return sum(label.endswith("[positive]") for label in outcome.requests)


@pytest.mark.ray
def test_no_server_errors_and_no_undocumented_statuses(gateway_url, keys):
    """The deployed gateway (no media routes: the session gateway names no media app)."""
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    outcome = _fuzz_schema(schema, keys.alice, keys.admin)
    assert not outcome.failures, "\n\n".join(outcome.failures)
    operations = len(_operations(schema))
    assert operations >= 45
    assert _positive(outcome) == operations  # every operation was tried with valid input


MEDIA_APP = "media-fuzz"


@pytest.fixture(scope="module")
def media_gateway(request, catalog_handle, serve_url, tmp_path_factory):
    """The gateway app with the media routes, in this process (its media calls go to a
    MediaRouter deployment on the session's Serve, providers faked, Runway without a
    token). The bootstrap admin key is this process's, ``TEST_ADMIN_KEY``."""
    from ray import serve

    from serve_apps.media import build_media_app

    config = make_config(request.getfixturevalue("fakes"),
                         tmp_path_factory.mktemp("media-fuzz") / "media",
                         missing=("runway",), poll_interval_s=0.2)
    serve.run(build_media_app(config, http=False), name=MEDIA_APP, route_prefix=None)
    yield create_app(GatewayConfig(media_app=MEDIA_APP))
    serve.delete(MEDIA_APP)


@pytest.mark.ray
def test_media_routes_answer_only_documented_statuses(media_gateway, keys):
    schema = schemathesis.openapi.from_asgi("/openapi.json", media_gateway)
    media = ("/v1/images", "/v1/videos", "/v1/predictions", "/v1/webhooks", "/v1/edits",
             "/v1/source-images", "/v1/providers")
    outcome = Outcome()
    for prefix in media:
        part = _fuzz_schema(schema, keys.alice, TEST_ADMIN_KEY, paths=prefix)
        outcome.requests.update(part.requests)
        outcome.statuses.update(part.statuses)
        outcome.failures.extend(part.failures)
    assert not outcome.failures, "\n\n".join(outcome.failures)
    operations = sum(len(_operations(schema, prefix)) for prefix in media)
    assert operations >= 10
    assert _positive(outcome) == operations  # every media operation was tried


def test_every_route_documents_its_error_statuses_with_the_error_schema():
    """Media routes included (mounted when a media app is named); /health takes no key
    and documents only 200 and 503."""
    doc = create_app(GatewayConfig(media_app="media")).openapi()
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    checked = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path == "/health":
                assert set(responses) == {"200", "503"}
                assert "security" not in operation
                continue
            missing = ERROR_STATUSES - set(responses)
            assert not missing, f"{method} {path} does not document {sorted(missing)}"
            for status in ERROR_STATUSES:
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == ref, f"{method} {path} {status}"
            if path != "/v1/webhooks/{provider}":  # signed by the provider, not keyed
                assert operation.get("security") == [{"HTTPBearer": []}], f"{method} {path}"
            checked += 1
    assert checked >= 40
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # 422 is ours
    upload = doc["paths"]["/v1/datasets"]["post"]["responses"]
    assert {"400", "413"} <= set(upload)
    # a JSON body that does not parse (not UTF-8, say) is FastAPI's 400
    assert "400" in doc["paths"]["/v1/keys"]["post"]["responses"]
    assert "400" not in doc["paths"]["/v1/keys"]["get"]["responses"]
    assert "WWW-Authenticate" in doc["paths"]["/v1/keys"]["get"]["responses"]["401"]["headers"]

"""Operating the serving apps under load (issue 31), on the session's Ray cluster.

The package's LLM app (``llm``, deployed from a Serve config as ``garden up`` and KubeRay
deploy it: :func:`tests.serve_apps.llm.conftest.deploy_llm`) is given an
``autoscaling_config`` of 1 to 2 replicas, which Serve applies in place; then, in order:

1. load raises it to 2 replicas; an adapter registered while both run is answered by
   both within 30 s; a key's requests per minute are counted once for both replicas (the
   shared counter); idle brings it back to 1;
2. a new engine argument is deployed under load: not one of at least 300 requests fails
   (Serve's surge starts the new replica, which is ready only once its engine answered,
   before the old one stops and drains);
3. the gateway likewise, under 300 requests;
4. with ``min_replicas: 0`` it scales to zero, and the first request after that waits for
   a cold start and is answered.

Each test prints what it measured (``-s`` shows it): seconds to scale up and down, to
serve the new adapter everywhere, failed requests of N and the peak replica count of an
upgrade, the cold start.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serve_apps.gateway.builder import DEPLOYMENT_NAME as GATEWAY
from serve_apps.llm.ingress import REPLICA_HEADER
from tests.conftest import TEST_ADMIN_KEY, wait_for
from tests.serve_apps.llm.conftest import BASE_NAME, ENGINE_ARGS, deploy_llm, llm_config
from tests.serve_apps.llm.load import SYSTEM, Load

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.slow]

#: 2 replicas at most; a replica wants 2 ongoing requests, so 3 concurrent requests ask
#: for 2 and 1 asks for 1; decisions within seconds, not Serve's 30 s / 600 s
SCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2,
           "upscale_delay_s": 1, "downscale_delay_s": 6, "look_back_period_s": 2}
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}


def replicas(app: str = "llm", deployment: str = "LLMServer") -> dict[str, int]:
    """Serve's replica counts of a deployment by state (RUNNING, STARTING, STOPPING...)."""
    from ray import serve

    status = serve.status().applications.get(app)
    found = status.deployments.get(deployment) if status else None
    return dict(found.replica_states) if found else {}


def chat(model: str, max_tokens: int = 2) -> dict:
    return {"model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [SYSTEM, {"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def ops(llm_url, serve_url, base_model):
    """The app's chat URL, autoscaled between 1 and 2 replicas (its running replica kept:
    the same replica answers before and after)."""
    url = f"{llm_url}/chat/completions"
    wait_for(lambda: replicas() == {"RUNNING": 1}, 300, "the app's one replica")

    def replica() -> str:
        r = httpx.post(url, json=chat(BASE_NAME), headers=AUTH, timeout=300)
        assert r.status_code == 200, r.text
        return r.headers[REPLICA_HEADER]

    before = replica()
    deploy_llm(llm_config(base_model.id, autoscaling_config=SCALING), serve_url)
    assert replica() == before  # the new scaling was applied in place, no restart
    return url


def test_load_scales_to_two_replicas_both_serve_a_new_adapter_and_idle_scales_back(
        ops, llm_catalog, base_model, adapter_folder):
    from catalog import schemas as s

    with Load(ops, chat(BASE_NAME), concurrency=3, headers=AUTH) as load:
        started = time.monotonic()
        wait_for(lambda: replicas().get("RUNNING", 0) == 2, 600, "a second replica")
        up_s = time.monotonic() - started
    assert not load.failed(), load.failed()[:3]

    # the base model's load gives way to the adapter's, which keeps both replicas busy
    name = f"ops-lora-{uuid.uuid4().hex[:6]}"
    adapter = llm_catalog.register_model(s.ModelCreate(
        name=name, kind=s.ModelKind.adapter, path=str(adapter_folder),
        base_model_id=base_model.id))
    registered = time.monotonic()
    with Load(ops, chat(f"{BASE_NAME}:{adapter.name}"), concurrency=4, headers=AUTH) as lora:
        wait_for(lambda: len(lora.replicas()) == 2,
                 30, "the new adapter answered by both replicas", interval_s=0.2)
        everywhere_s = time.monotonic() - registered

        # one key, rpm 5: counted once for the cluster, whichever replica admits it.
        # Rounds of 3 concurrent requests until both replicas have answered some (Serve's
        # router picks the shorter queue, so one-at-a-time requests may all go to one):
        # counted per replica, the two would admit more than 5 between them.
        _, secret = llm_catalog.create_api_key(f"user-{uuid.uuid4().hex[:8]}", "ops",
                                               rpm_limit=5)
        limited: list[httpx.Response] = []
        sent = time.monotonic()
        with httpx.Client(headers={"Authorization": f"Bearer {secret}"}, timeout=300) as h, \
                ThreadPoolExecutor(3) as pool:
            while len(limited) < 12 or len(
                    {r.headers.get(REPLICA_HEADER) for r in limited}) < 2:
                assert len(limited) < 60, [r.headers.get(REPLICA_HEADER) for r in limited]
                limited += pool.map(lambda _: h.post(ops, json=chat(BASE_NAME, 1)), range(3))
        limited_s = time.monotonic() - sent
    assert not lora.failed(), lora.failed()[:3]
    assert limited_s < 55, limited_s  # all inside one sliding minute
    codes = [r.status_code for r in limited]
    assert codes.count(200) == 5 and codes.count(429) == len(limited) - 5, codes

    idle = time.monotonic()
    wait_for(lambda: replicas() == {"RUNNING": 1}, 300, "back to one replica")
    down_s = time.monotonic() - idle
    print(f"scale up to 2: {up_s:.0f} s under 3 concurrent chats; new adapter on both "
          f"replicas: {everywhere_s:.1f} s; back to 1 after idle: {down_s:.0f} s "
          f"({len(load.answers) + len(lora.answers)} requests, 0 failed)")


def test_a_new_engine_argument_is_rolled_out_under_load_without_a_failed_request(
        ops, base_model, serve_url):
    """The app runs 1 replica; Serve's surge (``max_surge_percent`` 100) starts a new one,
    which takes traffic only once its engine answered, then the old one drains."""
    config = llm_config(base_model.id, {**ENGINE_ARGS, "max_num_seqs": 6},
                        autoscaling_config={**SCALING, "max_replicas": 1})
    wait_for(lambda: replicas() == {"RUNNING": 1}, 300, "one replica before the upgrade")
    with Load(ops, chat(BASE_NAME), concurrency=2, headers=AUTH) as load:
        wait_for(lambda: len(load.answers) >= 20, 120, "requests before the upgrade")
        old = load.replicas()
        peak = {"n": 0}
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak["n"] = max(peak["n"], sum(replicas().values()))
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        deploy_llm(config, serve_url)
        wait_for(lambda: replicas() == {"RUNNING": 1}, 300, "the old replica gone")
        rolled_s = time.monotonic() - started
        done.set()
        watcher.join()
        wait_for(lambda: len(load.answers) >= 300, 600, "300 requests")
    new = load.replicas() - old
    print(f"LLM upgrade: {len(load.failed())} failed of {len(load.answers)}; rolled out "
          f"in {rolled_s:.0f} s, peak {peak['n']} replicas")
    assert len(load.answers) >= 300
    assert not load.failed(), load.failed()[:3]
    assert peak["n"] == 2 and len(new) == 1  # one surge replica, which then served


def test_the_gateway_is_rolled_out_under_load_without_a_failed_request(serve_url):
    from ray import serve

    from cluster.work import RayWork
    from serve_apps.gateway import GatewayConfig, build_gateway_app

    def gateway(preview_rows: int):
        config = GatewayConfig(preview_rows=preview_rows, reconcile_period_s=0,
                               env_vars={"GARDEN_ADMIN_KEY": TEST_ADMIN_KEY})
        return build_gateway_app(config, RayWork())

    serve.run(gateway(20), name="ops-gateway", route_prefix="/ops-gateway")
    try:
        url = f"{serve_url}/ops-gateway/v1/models?page_size=1"
        with Load(url, None, concurrency=4, headers=AUTH) as load:
            wait_for(lambda: len(load.answers) >= 50, 120, "requests before the upgrade")
            at = len(load.answers)
            serve.run(gateway(21), name="ops-gateway", route_prefix="/ops-gateway")
            wait_for(lambda: replicas("ops-gateway", GATEWAY) == {"RUNNING": 1}, 120,
                     "the old gateway replica gone")
            wait_for(lambda: len(load.answers) >= max(300, at + 100), 300, "300 requests")
        print(f"gateway upgrade: {len(load.failed())} failed of {len(load.answers)}")
        assert not load.failed(), load.failed()[:3]
    finally:
        serve.delete("ops-gateway")


def test_an_app_scaled_to_zero_answers_its_first_request_after_a_cold_start(
        ops, base_model, serve_url):
    config = llm_config(base_model.id, {**ENGINE_ARGS, "max_num_seqs": 6},
                        autoscaling_config={**SCALING, "min_replicas": 0, "max_replicas": 1,
                                            "downscale_to_zero_delay_s": 2,
                                            "upscale_delay_s": 0})
    deploy_llm(config, serve_url)  # the scaling changes alone: applied in place
    wait_for(lambda: not replicas().get("RUNNING") and not replicas().get("STOPPING"),
             300, "zero replicas")
    started = time.monotonic()
    r = httpx.post(ops, json=chat(BASE_NAME), headers=AUTH, timeout=900)
    cold_s = time.monotonic() - started
    print(f"cold start from zero: {cold_s:.0f} s to the first answer")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]

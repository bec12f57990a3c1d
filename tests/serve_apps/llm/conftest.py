"""Session fixtures: the catalog actor, SmolLM2 registered as a base model, a real PEFT
adapter, and ONE deployed LLM app (one vLLM engine) shared by every test here."""

from __future__ import annotations

import pytest

BASE_NAME = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def llm_catalog(catalog_handle):
    """The session's shared catalog actor (tests/conftest.py)."""
    from catalog.actor import Catalog

    return Catalog(catalog_handle)


@pytest.fixture(scope="session")
def base_model(llm_catalog, smollm2_folder):
    """SmolLM2 registered as a base model (reused when an earlier test registered it)."""
    from catalog import schemas as s
    from catalog.errors import NotFound

    try:
        found = llm_catalog.find_model(BASE_NAME)
        if found.kind == s.ModelKind.base:
            return found
    except NotFound:
        pass
    return llm_catalog.register_model(s.ModelCreate(
        name=BASE_NAME, kind=s.ModelKind.base, path=str(smollm2_folder),
    ))


def make_peft_adapter(base_folder, out_dir, seed: int):
    """A real PEFT LoRA adapter (r=8 on q/v projections) of the base model, with random
    non-zero B matrices so it changes the model's output; saved with save_pretrained."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
    ))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)
    peft_model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def adapter_folder(smollm2_folder, tmp_path_factory):
    return make_peft_adapter(smollm2_folder, tmp_path_factory.mktemp("adapters") / "noisy", 0)


@pytest.fixture(scope="session")
def adapter_model(llm_catalog, base_model, adapter_folder):
    """The PEFT adapter registered in the catalog as an adapter of the base model."""
    from catalog import schemas as s

    name = "noisy-lora"
    return llm_catalog.register_model(s.ModelCreate(
        name=name, version=llm_catalog.next_version("models", name), kind=s.ModelKind.adapter,
        path=str(adapter_folder), base_model_id=base_model.id,
    ))


#: The package's LLM app: small batches and a 1 GiB KV cache on 2 cores.
ENGINE_ARGS = {"max_model_len": 1024, "dtype": "float32", "max_num_seqs": 8, "max_loras": 2,
               "max_lora_rank": 16}
REPLICA_OPTIONS = {"num_cpus": 1, "runtime_env": {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}}}


#: One replica, as an autoscaling range: test_operations.py widens it in place (Serve
#: restarts an app switched between ``num_replicas`` and ``autoscaling_config``).
ONE_REPLICA = {"min_replicas": 1, "max_replicas": 1}


def llm_config(base_id: str, engine_args: dict | None = None,
               autoscaling_config: dict | None = None):
    """The app's :class:`LLMAppConfig`: the package's engine arguments (or
    ``engine_args``), autoscaled by ``autoscaling_config`` (default :data:`ONE_REPLICA`)."""
    from serve_apps.llm import LLMAppConfig

    return LLMAppConfig(model=base_id, engine_args=engine_args or ENGINE_ARGS,
                        deployment={"ray_actor_options": REPLICA_OPTIONS,
                                    "autoscaling_config": autoscaling_config or ONE_REPLICA},
                        energy_sample_s=1.0)


def deploy_llm(config, serve_url: str) -> None:
    """Deploy the LLM app ``llm`` with ``config`` from a Serve config, as ``garden up``
    and KubeRay deploy it (:func:`cluster.serve_config.deploy_config`), on the session's
    Serve; returns once it runs. Redeployed with other Serve options alone (scaling), the
    running replicas are kept; with other ``args`` (engine arguments), replaced."""
    from cluster.serve_config import LLM_APP, ServeSettings, deploy_config, serve_config

    port = int(serve_url.rsplit(":", 1)[1])
    doc = serve_config(ServeSettings(http_port=port, media=False, llm={LLM_APP: config}))
    doc["applications"] = [a for a in doc["applications"] if a["name"] == LLM_APP]
    deploy_config(doc, timeout_s=900)


@pytest.fixture(scope="package")
def llm_url(request, serve_url, base_model):
    """The deployed LLM app's OpenAI base URL (``.../openai/v1``): one engine for the
    package's modules (test_generate, test_llm_app, then test_operations, which scales
    and upgrades it); deleted after them, so later packages do not share the 2 cores and
    the memory with an idle vLLM engine.

    The engine loads (about a minute) in a thread while the PEFT adapter is built and
    registered: the app reads adapters from the catalog per request, so the order is free.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ray import serve

    config = llm_config(base_model.id)
    with ThreadPoolExecutor(1) as pool:
        deployed = pool.submit(deploy_llm, config, serve_url)
        request.getfixturevalue("adapter_model")
        deployed.result(timeout=900)
    yield f"{serve_url}{config.route_prefix}/v1"
    serve.delete("llm")

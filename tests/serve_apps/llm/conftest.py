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


@pytest.fixture(scope="module")
def llm_url(request, serve_url, base_model):
    """The deployed LLM app's OpenAI base URL (``.../openai/v1``); one engine per session
    (only test_llm_app.py uses it; the engine is deleted after it, so later modules do
    not share the 2 cores and the memory with an idle vLLM engine).

    The engine loads (about a minute) in a thread while the PEFT adapter is built and
    registered: the app reads adapters from the catalog per request, so the order is free.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ray import serve

    from serve_apps.llm import LLMAppConfig, build_llm_app

    config = LLMAppConfig(
        model=base_model.id,
        engine_args={"max_model_len": 1024, "dtype": "float32", "max_num_seqs": 8,
                     "max_loras": 2, "max_lora_rank": 16},
        deployment={"ray_actor_options": {
            "num_cpus": 1, "runtime_env": {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}}}},
        energy_sample_s=1.0,
    )
    app = build_llm_app(config)
    with ThreadPoolExecutor(1) as pool:
        deployed = pool.submit(serve.run, app, name="llm", route_prefix=config.route_prefix)
        request.getfixturevalue("adapter_model")
        deployed.result(timeout=900)
    yield f"{serve_url}{config.route_prefix}/v1"
    serve.delete("llm")

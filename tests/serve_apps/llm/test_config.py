"""LLMAppConfig validation and the Serve config file (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from serve_apps.llm import LLMAppConfig
from serve_apps.llm.config import DeploymentOptions, EngineArgs

CONFIG_FILE = Path(__file__).parents[3] / "serve_apps" / "llm" / "llm.yaml"


def test_engine_args_become_vllm_cli_flags():
    args = EngineArgs(max_model_len=512, dtype="float32", max_num_seqs=4, max_loras=2,
                      max_lora_rank=32, seed=None, extra={"enforce_eager": True})
    argv = args.cli_args("/models/base", "base")
    assert argv[:4] == ["--model", "/models/base", "--served-model-name", "base"]
    assert argv[argv.index("--max-model-len") + 1] == "512"
    assert argv[argv.index("--max-lora-rank") + 1] == "32"
    assert "--enable-lora" in argv and "--enforce-eager" in argv
    assert "--seed" not in argv


def test_memory_defaults_follow_the_platform():
    from serve_apps.llm.config import CPU_KV_CACHE_BYTES

    gpu = EngineArgs().cli_args("/m", "base")
    assert "--gpu-memory-utilization" not in gpu and "--kv-cache-memory-bytes" not in gpu
    cpu = EngineArgs().cli_args("/m", "base", on_cpu=True)
    assert cpu[cpu.index("--kv-cache-memory-bytes") + 1] == str(CPU_KV_CACHE_BYTES)
    assert "--gpu-memory-utilization" not in cpu
    chosen = EngineArgs(gpu_memory_utilization=0.3).cli_args("/m", "base", on_cpu=True)
    assert chosen[chosen.index("--gpu-memory-utilization") + 1] == "0.3"
    assert "--kv-cache-memory-bytes" not in chosen
    with pytest.raises(ValidationError, match="gpu_memory_utilization"):
        EngineArgs(gpu_memory_utilization=1.5)


def test_engine_args_parse_with_vllms_own_parser():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    argv = EngineArgs(max_model_len=512, dtype="float32").cli_args("/m", "base", on_cpu=True)
    parsed = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    assert parsed.max_model_len == 512
    assert parsed.kv_cache_memory_bytes == 2 << 30
    assert parsed.enable_lora is True
    assert parsed.served_model_name == ["base"]


def test_deployment_options_are_checked_by_serve():
    opts = DeploymentOptions(autoscaling_config={"min_replicas": 1, "max_replicas": 3},
                             num_replicas=None)
    assert "num_replicas" not in opts.serve_kwargs()
    with pytest.raises(ValidationError, match="not both"):
        DeploymentOptions(num_replicas=2, autoscaling_config={"max_replicas": 3})
    with pytest.raises(ValidationError):
        DeploymentOptions(autoscaling_config={"min_replicas": 5, "max_replicas": 1})


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError):
        LLMAppConfig(model="m", engine_args={"max_model_length": 10})


def test_serve_config_file_is_valid_and_builds():
    from ray.serve.schema import ServeDeploySchema

    from serve_apps.llm import app_builder

    raw = yaml.safe_load(CONFIG_FILE.read_text())
    schema = ServeDeploySchema.model_validate(raw)
    (app,) = schema.applications
    assert app.import_path == "serve_apps.llm:app_builder"
    assert app.route_prefix == "/openai"
    config = LLMAppConfig.model_validate(app.args)
    assert config.engine_args.enable_lora
    # The Application is one deployment, named LLMServer, of the LLMIngress class (HTTP
    # routes and engine in one replica), bound to this config (read through the bound
    # deployment, as Ray's own Serve tests do).
    engine = app_builder(app.args)._bound_deployment
    assert engine.name == "LLMServer" and engine.func_or_class.__name__ == "LLMIngress"
    assert engine.init_args[0] == config
    opts = config.deployment.serve_kwargs()
    assert (engine.num_replicas, engine.max_ongoing_requests, engine.ray_actor_options) == (
        opts["num_replicas"], opts["max_ongoing_requests"], {"num_cpus": 1})
    # scaling, surge and shutdown are the deployments override's, applied in place
    (override,) = app.deployments
    assert override.name == engine.name
    assert override.autoscaling_config["max_replicas"] == 2
    assert (override.max_surge_percent, override.graceful_shutdown_timeout_s) == (100, 120)

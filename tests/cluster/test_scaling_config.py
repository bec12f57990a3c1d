"""Each LLM app's scaling is set per base model in a cluster config file and reaches a
running app in place (issue 31); no cluster needed here (``tests/serve_apps/llm/
test_operations.py`` deploys these configs)."""

from __future__ import annotations

from pathlib import Path

from ray.serve._private.deploy_utils import get_app_code_version
from ray.serve.schema import ServeApplicationSchema
from typer.testing import CliRunner

from cluster.serve_config import ServeSettings, llm_spec, load_llm_apps, serve_config
from serve_apps.llm import LLMAppConfig

SCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4}


def code_version(config: LLMAppConfig) -> str:
    """Serve's code version of the app's config entry: what Serve compares to decide
    between an in-place update and rebuilding the app (every replica restarted)."""
    entry = llm_spec("llm", config).entry({})
    return get_app_code_version(ServeApplicationSchema.model_validate(entry))


def test_a_scaling_change_is_applied_in_place_and_an_engine_change_rolls_out():
    base = LLMAppConfig(model="SmolLM2-135M-Instruct",
                        deployment={"autoscaling_config": SCALING, "max_adapters_per_replica": 4})
    rescaled = LLMAppConfig.model_validate(base.model_dump() | {"deployment": {
        "autoscaling_config": {**SCALING, "min_replicas": 0, "max_replicas": 4},
        "ray_actor_options": {"num_cpus": 2}, "max_ongoing_requests": 32,
        "max_surge_percent": 0, "graceful_shutdown_timeout_s": 5,
        "max_adapters_per_replica": 4}})
    engine = base.model_copy(update={"engine_args": base.engine_args.model_copy(
        update={"max_num_seqs": 4})})
    assert code_version(rescaled) == code_version(base) != code_version(engine)
    # Serve's code version counts the deployments that autoscale: switching an app
    # between num_replicas and autoscaling_config rolls it out too
    fixed = LLMAppConfig.model_validate(base.model_dump() | {"deployment": {
        "num_replicas": 2, "max_adapters_per_replica": 4}})
    assert code_version(fixed) != code_version(base)
    # what a replica itself reads stays in args; what Serve applies is the override's
    spec = llm_spec("llm", rescaled)
    assert spec.args["deployment"] == {"max_adapters_per_replica": 4}
    (override,) = spec.deployments
    assert override["autoscaling_config"]["max_replicas"] == 4
    assert (override["max_surge_percent"], override["graceful_shutdown_timeout_s"]) == (0, 5)
    assert "num_replicas" not in override


def test_upgrades_default_to_a_surge_and_a_graceful_drain():
    (override,) = llm_spec("llm", LLMAppConfig(model="m")).deployments
    assert override["max_surge_percent"] == 100
    assert override["graceful_shutdown_timeout_s"] == 120


def test_a_cluster_config_sets_each_base_models_scaling(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    path.write_text(
        "llm:\n"
        "  llm:\n"
        "    model: SmolLM2-135M-Instruct\n"
        "    deployment:\n"
        "      autoscaling_config: {min_replicas: 1, max_replicas: 3}\n"
        "  merged:\n"
        "    model: chatterbot-merged\n"
        "    route_prefix: /merged\n"
        "    deployment:\n"
        "      autoscaling_config: {min_replicas: 0, max_replicas: 1,\n"
        "                           downscale_to_zero_delay_s: 300}\n")
    apps = load_llm_apps(path)
    doc = serve_config(ServeSettings(media=False, llm=apps))
    scaling = {a["name"]: a["deployments"][0]["autoscaling_config"]
               for a in doc["applications"] if a["name"] in apps}
    assert scaling["llm"]["max_replicas"] == 3
    assert scaling["merged"]["min_replicas"] == 0  # a merged model's app scales to zero


def test_garden_up_names_the_file_line_and_field_of_a_bad_cluster_config(tmp_path: Path):
    from garden.cli import app

    path = tmp_path / "serve.yaml"
    path.write_text("llm:\n  llm:\n    model: SmolLM2-135M-Instruct\n"
                    "    deployment:\n      replicas: 2\n")
    result = CliRunner().invoke(app, ["up", "--serve-config", str(path)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert f"{path}, line 5, field 'llm.llm.deployment.replicas'" in out, out

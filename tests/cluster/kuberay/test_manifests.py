"""``garden deploy kuberay``'s manifests, without a Kubernetes cluster: each object against
its schema (KubeRay's CRDs, the core kinds through kubernetes-validate), the rules of
KubeRay's own validation that the fields used here meet, the Serve config against Ray's
``ServeDeploySchema`` and the builders it names, and what must never be in them (a secret's
value). ``tests/cluster/test_local.py`` deploys the same Serve config with ``serve deploy``
and runs a RayJob's entrypoint with ``ray job submit``."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from batch_jobs.run import BatchJobSpec
from catalog import schemas as s
from cluster.kuberay.manifests import (
    JOB_DIR,
    JOB_FILE,
    KUBERAY_VERSION,
    SECRET_KEYS,
    KubeRaySettings,
    rayjob,
)
from cluster.serve_config import ServeSettings, serve_config
from tests.cluster.kuberay.crd_schema import (
    KUBERAY_VERSION as SCHEMA_VERSION,
)
from tests.cluster.kuberay.crd_schema import (
    validate_core,
    validate_kuberay,
)

GARDEN = str(Path(sys.executable).with_name("garden"))


def garden_deploy(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GARDEN, "deploy", "kuberay", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, list[dict]]:
    """What ``garden deploy kuberay`` writes with its defaults: each YAML file's objects."""
    out = tmp_path_factory.mktemp("kuberay")
    done = garden_deploy(out)
    assert done.returncode == 0, done.stdout + done.stderr
    files = {p.name: list(yaml.safe_load_all(p.read_text())) for p in out.glob("*.yaml")}
    files["grafana-dashboard.json"] = [json.loads((out / "grafana-dashboard.json").read_text())]
    return files


def objects(written, kind: str) -> list[dict]:
    return [obj for docs in written.values() for obj in docs
            if isinstance(obj, dict) and obj.get("kind") == kind]


def test_every_file_is_written_and_the_schema_is_of_the_version_the_readme_names(written):
    assert set(written) == {"rayservice.yaml", "serve-config.yaml", "rayjob-train.yaml",
                            "rayjob-batch.yaml", "configmap.yaml", "secret.example.yaml",
                            "grafana-dashboard.json"}
    assert KUBERAY_VERSION == SCHEMA_VERSION
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert f"KubeRay {KUBERAY_VERSION}" in readme


def test_each_object_validates_against_its_schema(written):
    kinds = []
    for docs in written.values():
        for obj in docs:
            if "kind" not in obj:
                continue  # serve-config.yaml: checked below
            kinds.append(obj["kind"])
            if obj["apiVersion"] == "ray.io/v1":
                validate_kuberay(obj)
            else:
                validate_core(obj)
    assert sorted(kinds) == ["ConfigMap", "ConfigMap", "ConfigMap", "RayJob", "RayJob",
                             "RayService", "Secret", "Secret"]


def test_the_rayservice_holds_the_serve_config_that_serve_deploy_takes(written):
    from ray.serve.schema import ServeDeploySchema

    service, = objects(written, "RayService")
    doc = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert doc == written["serve-config.yaml"][0]
    ServeDeploySchema.model_validate(doc)
    apps = {app["name"]: app for app in doc["applications"]}
    assert list(apps) == ["media", "gateway", "console", "llm"]
    assert {name: app["route_prefix"] for name, app in apps.items()} == {
        "media": None, "gateway": "/", "console": "/ui", "llm": "/openai"}
    assert doc["proxy_location"] == "EveryNode" and doc["http_options"]["host"] == "0.0.0.0"
    # the gateway reaches the job API through the head Service KubeRay creates
    assert apps["gateway"]["args"]["dashboard_url"] == (
        "http://garden-head-svc.default.svc.cluster.local:8265")
    engine, = apps["llm"]["deployments"]
    assert engine["name"] == "LLMServer"
    assert engine["autoscaling_config"]["max_replicas"] == 4
    assert engine["ray_actor_options"] == {"num_cpus": 2, "num_gpus": 1}


def test_each_import_path_is_a_builder_taking_the_args_mapping(written):
    from ray._common.utils import import_attr

    for app in written["serve-config.yaml"][0]["applications"]:
        builder = import_attr(app["import_path"])
        params = list(inspect.signature(builder).parameters)
        assert params == ["args"], (app["name"], params)


def test_the_gateway_and_media_builders_build_from_plain_args():
    from ray.serve import Application

    from cluster.apps import gateway_app
    from serve_apps.media.builder import app_builder

    assert isinstance(gateway_app({"dashboard_url": "http://head:8265"}), Application)
    assert isinstance(app_builder({"num_replicas": 2}), Application)
    with pytest.raises(ValidationError, match="num_cpuz"):
        gateway_app({"num_cpuz": 1})
    with pytest.raises(TypeError, match="unknown replicas"):
        app_builder({"replicas": 2})


def test_the_groups_reserve_what_the_apps_ask_and_only_workers_have_gpus(written):
    service, = objects(written, "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    assert head["resources"]["requests"] == head["resources"]["limits"]
    group, = cluster["workerGroupSpecs"]
    worker = group["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    doc = yaml.safe_load(service["spec"]["serveConfigV2"])
    engine = next(app for app in doc["applications"] if app["name"] == "llm")["deployments"][0]
    actor = engine["ray_actor_options"]
    assert actor["num_gpus"] <= worker["resources"]["limits"]["nvidia.com/gpu"]
    assert actor["num_cpus"] <= int(worker["resources"]["limits"]["cpu"])
    assert (engine["autoscaling_config"]["max_replicas"] * actor["num_gpus"]
            <= group["maxReplicas"] * worker["resources"]["limits"]["nvidia.com/gpu"])
    # KubeRay's validateRayGroupResources: num-cpus/num-gpus come from the limits alone
    for params in (cluster["headGroupSpec"]["rayStartParams"], group["rayStartParams"]):
        assert not {"num-cpus", "num-gpus", "memory"} & set(params)
    assert cluster["enableInTreeAutoscaling"] is True
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_gcs_fault_tolerance_and_auth_name_their_secrets(written):
    service, = objects(written, "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    ft = cluster["gcsFaultToleranceOptions"]
    assert ft["redisAddress"] == "redis:6379"
    assert ft["redisPassword"] == {"valueFrom": {"secretKeyRef": {
        "name": "garden-redis", "key": "password"}}}
    # KubeRay's validation: token auth needs Ray >= 2.52 named in rayVersion
    assert cluster["authOptions"] == {"mode": "token"}
    major, minor, *_ = (int(part) for part in cluster["rayVersion"].split("."))
    assert (major, minor) >= (2, 52)
    head_env = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    # GCS FT set by options: KubeRay refuses REDIS_PASSWORD / RAY_REDIS_ADDRESS env beside
    assert not {e.get("name") for e in head_env.get("env", [])} & {
        "REDIS_PASSWORD", "RAY_REDIS_ADDRESS"}


def test_no_secret_value_is_inlined(written):
    secrets = {obj["metadata"]["name"]: obj for obj in objects(written, "Secret")}
    assert set(secrets["garden-secrets"]["stringData"]) == set(SECRET_KEYS)
    values = [v for secret in secrets.values() for v in secret["stringData"].values()]
    for name in ("rayservice.yaml", "rayjob-train.yaml", "rayjob-batch.yaml",
                 "configmap.yaml", "serve-config.yaml"):
        text = yaml.safe_dump_all(written[name])
        assert not any(value in text for value in values), name
        for key in SECRET_KEYS:
            assert f"name: {key}" not in text, (name, key)  # no env entry with a value
    for kind in ("RayService", "RayJob"):
        for obj in objects(written, kind):
            spec = obj["spec"].get("rayClusterConfig") or obj["spec"].get("rayClusterSpec")
            groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
            for group in groups:
                container = group["template"]["spec"]["containers"][0]
                assert {"secretRef": {"name": "garden-secrets"}} in container["envFrom"]
                assert {"configMapRef": {"name": "garden-config"}} in container["envFrom"]


def test_the_rayjobs_run_their_job_files(written):
    train_map, train = written["rayjob-train.yaml"]
    batch_map, batch = written["rayjob-batch.yaml"]
    assert train["spec"]["entrypoint"] == f"python -m train_jobs.run --config {JOB_FILE}"
    assert batch["spec"]["entrypoint"] == f"python -m batch_jobs.run --config {JOB_FILE}"
    for job, config_map in ((train, train_map), (batch, batch_map)):
        spec = job["spec"]
        assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"working_dir": JOB_DIR}
        assert spec["submissionMode"] == "K8sJobMode"
        assert spec["shutdownAfterJobFinishes"] is True and "rayClusterSpec" in spec
        assert spec["ttlSecondsAfterFinished"] >= 0 and spec["activeDeadlineSeconds"] > 0
        # no GCS FT on a job's own cluster: it lives as long as the job
        assert "gcsFaultToleranceOptions" not in spec["rayClusterSpec"]
        pod = spec["submitterPodTemplate"]["spec"]
        volume, = pod["volumes"]
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        assert pod["containers"][0]["volumeMounts"] == [{"name": "job", "mountPath": JOB_DIR}]
    s.TrainingJobCreate.model_validate(yaml.safe_load(train_map["data"][JOB_FILE]))
    spec = BatchJobSpec.model_validate(yaml.safe_load(batch_map["data"][JOB_FILE]))
    assert spec.input_file in batch_map["data"]  # the request lines ride along


def test_a_rayjob_on_an_existing_cluster_selects_it_and_leaves_it_running():
    settings = KubeRaySettings(train_job={"cluster": "garden-raycluster-x7k2p"})
    job = rayjob(settings, "train")
    validate_kuberay(job)
    spec = job["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": "garden-raycluster-x7k2p"}
    # KubeRay: no rayClusterSpec beside a selector, and the cluster is not the job's
    assert "rayClusterSpec" not in spec and "shutdownAfterJobFinishes" not in spec
    with pytest.raises(ValueError, match="train or batch"):
        rayjob(settings, "eval")


def test_an_llm_app_that_does_not_fit_a_worker_is_refused_by_name():
    llm = {"big": {"model": "m", "route_prefix": "/big",
                   "deployment": {"ray_actor_options": {"num_gpus": 2}}}}
    serve = ServeSettings(http_host="0.0.0.0", llm=llm)
    with pytest.raises(ValidationError, match="llm app 'big': num_gpus=2 per replica, but "
                                              "a gpu worker has 1"):
        KubeRaySettings(serve=serve)
    many = {"llm": {"model": "m", "deployment": {
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 9},
        "ray_actor_options": {"num_gpus": 1}}}}
    with pytest.raises(ValidationError, match="may ask for 9 GPUs, but the gpu group "
                                              "holds at most 4"):
        KubeRaySettings(serve=ServeSettings(llm=many))
    with pytest.raises(ValidationError, match="route_prefix '/openai' is already 'llm'"):
        ServeSettings(llm={"llm": {"model": "a"}, "other": {"model": "b"}})


def test_a_settings_file_sets_the_apps_and_a_bad_one_is_named_by_line(tmp_path):
    good = tmp_path / "kuberay.yaml"
    good.write_text("name: team-a\nnamespace: ml\nserve:\n  http_host: 0.0.0.0\n"
                    "  llm:\n    qwen:\n      model: Qwen2.5-0.5B-Instruct\n"
                    "      route_prefix: /qwen\n"
                    "      deployment: {ray_actor_options: {num_gpus: 1}}\n")
    done = garden_deploy(tmp_path / "out", "--config", str(good), "--image", "reg/mg:1")
    assert done.returncode == 0, done.stdout + done.stderr
    service = yaml.safe_load((tmp_path / "out" / "rayservice.yaml").read_text())
    assert service["metadata"] == {"name": "team-a", "namespace": "ml",
                                   "labels": {"app.kubernetes.io/name": "model-garden"}}
    doc = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert [a["name"] for a in doc["applications"]] == ["media", "gateway", "console", "qwen"]
    containers = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert containers["containers"][0]["image"] == "reg/mg:1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: team-a\ngpu_workers:\n  cpus: 8\n  memory: lots\n")
    done = garden_deploy(tmp_path / "bad-out", "--config", str(bad))
    assert done.returncode == 1
    assert f"{bad}, line 4, field 'gpu_workers.memory'" in done.stdout, done.stdout
    assert not (tmp_path / "bad-out").exists()


def test_serve_config_refuses_two_apps_at_one_route():
    from cluster.serve_config import AppSpec

    clash = AppSpec(name="console", route_prefix="/",
                    import_path="garden.console.serve:app_builder")
    with pytest.raises(ValidationError, match="route_prefix"):
        serve_config(ServeSettings(), [clash])

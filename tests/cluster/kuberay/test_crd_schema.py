"""The manifest validators of tests/cluster/kuberay/crd_schema.py: KubeRay's own samples fit,
and each kind of mistake fails naming its path."""

from __future__ import annotations

import copy
import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from tests.cluster.kuberay.crd_schema import (
    CRD_DIR,
    KUBERAY_VERSION,
    KUBERNETES_VERSION,
    PLURALS,
    StructuralValidator,
    crd_schema,
    validate_core,
    validate_kuberay,
)

SAMPLES = Path(__file__).resolve().parent / "samples"
ROOT = Path(__file__).resolve().parents[3]


def sample(name: str) -> list[dict]:
    """The documents of a KubeRay sample file (copied from KubeRay v1.7.0)."""
    return list(yaml.safe_load_all((SAMPLES / name).read_text()))


@pytest.fixture
def rayservice() -> dict:
    (doc,) = sample("ray-service.sample.yaml")
    return doc


@pytest.fixture
def rayjob() -> dict:
    return sample("ray-job.sample.yaml")[0]


def errors_of(obj: dict) -> list[str]:
    """The lines of validate_kuberay's AssertionError (it must raise)."""
    with pytest.raises(AssertionError) as info:
        validate_kuberay(obj)
    head, *lines = str(info.value).splitlines()
    assert head.startswith(f"{obj['kind']} '{obj['metadata']['name']}' does not fit KubeRay")
    return [line.strip() for line in lines]


#: Where each kind holds its RayCluster spec.
CLUSTER = {"RayService": "rayClusterConfig", "RayJob": "rayClusterSpec"}


def worker(obj: dict) -> dict:
    return obj["spec"][CLUSTER[obj["kind"]]]["workerGroupSpecs"][0]


def w0(obj: dict) -> str:
    """The path of ``worker(obj)``."""
    return f"spec.{CLUSTER[obj['kind']]}.workerGroupSpecs[0]"


W0 = w0({"kind": "RayService"})


def test_kuberay_samples_fit(rayservice, rayjob):
    assert (rayservice["kind"], rayjob["kind"]) == ("RayService", "RayJob")
    validate_kuberay(rayservice)
    validate_kuberay(rayjob)


def test_misspelled_field_is_unknown(rayservice):
    rayservice["spec"]["serveConfigv2"] = rayservice["spec"].pop("serveConfigV2")
    assert errors_of(rayservice) == [
        "spec.serveConfigv2: unknown field (not in the schema; the API server would drop it)"
    ]


def test_unknown_field_deep_in_a_pod_template(rayservice):
    container = worker(rayservice)["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "IfNotPresent"
    assert errors_of(rayservice) == [
        f"{W0}.template.spec.containers[0].imagePullPolicyy: unknown field "
        "(not in the schema; the API server would drop it)"
    ]


def test_wrong_type(rayservice):
    worker(rayservice)["replicas"] = "two"
    assert errors_of(rayservice) == [f"{W0}.replicas: 'two' is not of type 'integer'"]


def test_missing_required_fields(rayservice, rayjob):
    del worker(rayservice)["groupName"]
    del rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"][0]["name"]
    assert errors_of(rayservice) == [
        "spec.rayClusterConfig.headGroupSpec.template.spec.containers[0].name: "
        "required field is missing",
        f"{W0}.groupName: required field is missing",
    ]
    del rayjob["spec"]
    assert errors_of(rayjob) == ["spec: required field is missing"]


def test_errors_are_all_listed(rayservice):
    worker(rayservice)["replicas"] = "two"
    worker(rayservice)["groupNme"] = worker(rayservice).pop("groupName")
    assert [e.split(":")[0] for e in errors_of(rayservice)] == [
        f"{W0}.groupName", f"{W0}.groupNme", f"{W0}.replicas"
    ]


@pytest.mark.parametrize("cpu", [1, "500m", "1.5", "2Gi"])
def test_int_or_string_quantities_fit(rayjob, cpu):
    container = worker(rayjob)["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
    validate_kuberay(rayjob)


@pytest.mark.parametrize(
    ("cpu", "message"),
    [
        (1.5, "1.5 is not an integer or a string (int-or-string)"),
        (True, "True is not an integer or a string (int-or-string)"),
        ([1], "[1] is not an integer or a string (int-or-string)"),
        ("two", "'two' does not match"),
    ],
)
def test_int_or_string_rejects_other_values(rayjob, cpu, message):
    container = worker(rayjob)["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"cpu": cpu}}
    (error,) = errors_of(rayjob)
    cpu_path = f"{w0(rayjob)}.template.spec.containers[0].resources.limits.cpu"
    assert error.startswith(f"{cpu_path}: {message}")


def test_duplicate_list_map_keys(rayservice):
    containers = worker(rayservice)["template"]["spec"]["containers"]
    containers.append(copy.deepcopy(containers[0]))
    containers[0]["ports"] = [{"containerPort": 8000}, {"containerPort": 8000, "protocol": "TCP"}]
    assert errors_of(rayservice) == [
        f"{W0}.template.spec.containers[0].ports[1]: duplicate key (containerPort, protocol) "
        '{"containerPort": 8000, "protocol": "TCP"} in a list-type map (first at [0])',
        f'{W0}.template.spec.containers[1]: duplicate key (name) {{"name": "ray-worker"}} '
        "in a list-type map (first at [0])",
    ]
    containers[1]["name"] = "sidecar"
    containers[0]["ports"][1]["protocol"] = "UDP"
    validate_kuberay(rayservice)


def test_null_only_where_nullable(rayservice):
    worker(rayservice)["replicas"] = None
    assert errors_of(rayservice) == [f"{W0}.replicas: None is not of type 'integer'"]
    # Only status fields are nullable in these CRDs: a schema of its own.
    nullable = StructuralValidator({"type": "string", "nullable": True})
    assert nullable.is_valid(None)
    assert nullable.is_valid("x")
    assert not nullable.is_valid(1)


def test_which_objects_take_unknown_fields():
    """Closed: ``properties`` without ``additionalProperties`` or
    ``x-kubernetes-preserve-unknown-fields`` (none of the latter in these CRDs' specs)."""
    props = {"a": {"type": "integer"}}
    closed = StructuralValidator({"type": "object", "properties": props})
    assert [list(e.path) for e in closed.iter_errors({"a": 1, "b": 2})] == [["b"]]
    for schema in (
        {"type": "object", "properties": props, "x-kubernetes-preserve-unknown-fields": True},
        {"type": "object", "properties": props, "additionalProperties": {"type": "integer"}},
        {"type": "object"},
    ):
        assert StructuralValidator(schema).is_valid({"a": 1, "b": 2}), schema


def test_api_version_and_kind(rayjob):
    rayjob["apiVersion"] = "ray.io/v1alpha1"
    assert errors_of(rayjob) == ["apiVersion: 'ray.io/v1alpha1' is not 'ray.io/v1'"]
    rayjob["apiVersion"], rayjob["kind"] = "ray.io/v1", "RayCluster"
    assert errors_of(rayjob) == ["kind: 'RayCluster' is none of ['RayJob', 'RayService']"]


def test_schema_files_are_the_scripts_output(tmp_path):
    """The committed files are what scripts/kuberay_crd_schemas.py writes for their content
    (compact, sorted, gzip without timestamp), and hold the CRDs' v1 schemas."""
    spec = importlib.util.spec_from_file_location(
        "kuberay_crd_schemas", ROOT / "scripts" / "kuberay_crd_schemas.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert set(script.PLURALS) == set(PLURALS.values())
    for kind, plural in PLURALS.items():
        committed = CRD_DIR / f"{plural}-{KUBERAY_VERSION}.json.gz"
        schema = json.loads(gzip.decompress(committed.read_bytes()))
        assert schema == crd_schema(kind)
        assert schema["properties"]["kind"]["type"] == "string"
        assert "rayClusterConfig" in schema["properties"]["spec"]["properties"] or (
            "rayClusterSpec" in schema["properties"]["spec"]["properties"]
        )
        script.write_schema(schema, tmp_path / committed.name)
        assert (tmp_path / committed.name).read_bytes() == committed.read_bytes()


# --- core kinds (kubernetes-validate) ---------------------------------------------------


def secret(data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token"},
            "type": "Opaque", "data": data}


def test_core_kinds_fit():
    configmap = sample("ray-job.sample.yaml")[1]
    assert configmap["kind"] == "ConfigMap"
    validate_core(configmap)
    validate_core(secret({"token": "aGZfeHl6"}))
    validate_core(secret({"token": "aGZfeHl6"}), k8s_version="1.33")


def test_core_wrong_type_fails():
    with pytest.raises(AssertionError, match=r"Secret 'hf-token' .* data\.k: 123 is not of type"):
        validate_core(secret({"k": 123}))


def test_core_unknown_field_fails():
    obj = secret({"token": "aGZfeHl6"})
    obj["stringdata"] = {"token": "x"}
    with pytest.raises(AssertionError, match=r"Kubernetes 1\.37's schema: .*'stringdata'"):
        validate_core(obj)


def test_kubernetes_version_is_the_newest_shipped():
    import kubernetes_validate.utils

    assert kubernetes_validate.utils.latest_version() == f"{KUBERNETES_VERSION}.0"

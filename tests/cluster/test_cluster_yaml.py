"""cluster.yaml is a valid Ray cluster launcher config (Ray's own JSON schema)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_validates_against_rays_schema(config):
    validate_config(prepare_config(config))


def test_schema_check_is_real(config):
    broken = {**config, "max_workers": "many"}
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_cpu_head_and_gpu_worker_group(config):
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["max_workers"] == 0
    gpu = [n for name, n in nodes.items() if n["resources"].get("GPU", 0) >= 1]
    assert len(gpu) == 1 and gpu[0]["min_workers"] >= 1
    assert gpu[0]["max_workers"] >= gpu[0]["min_workers"]


def test_setup_installs_the_gpu_extra_and_head_uses_explicit_ports(config):
    assert any('".[gpu]"' in c for c in config["setup_commands"])
    head = " ".join(config["head_start_ray_commands"])
    assert "--port=6380" in head and "--dashboard-port=8265" in head
    assert "--include-dashboard=true" in head and "GARDEN_DATABASE_URL" in head
    workers = " ".join(config["worker_start_ray_commands"])
    assert "$RAY_HEAD_IP:6380" in workers


def test_every_node_shares_the_database_and_the_storage(config):
    for commands in ("head_start_ray_commands", "worker_start_ray_commands"):
        started = " ".join(config[commands])
        assert 'GARDEN_DATABASE_URL="${GARDEN_DATABASE_URL}"' in started, commands
        assert 'GARDEN_STORAGE_URI="${GARDEN_STORAGE_URI}"' in started, commands
    setup = " ".join(config["setup_commands"])
    assert "GARDEN_STORAGE_URI" in setup and "GARDEN_DATABASE_URL" in setup

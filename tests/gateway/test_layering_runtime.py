"""The running gateway replica never loads torch, transformers, train_jobs or corpora: model
imports and dataset registrations run as Ray tasks (``cluster.work.RayWork``), not in the
replica."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.fixtures import assert_error
from tests.gateway.test_datasets import upload

pytestmark = pytest.mark.ray

#: The Serve replica actor's class name: ServeReplica:<app>:<deployment>.
REPLICA_CLASS = "ServeReplica:gateway:Gateway"
HEAVY = ("torch", "transformers", "train_jobs", "corpora", "peft", "vllm")


def _replica_pid(dashboard_url: str) -> int:
    """The gateway replica's PID, from Ray's state API on the session cluster (other Ray
    clusters may run on this machine, so its address is named)."""
    from ray.util.state import list_actors

    actors = list_actors(address=dashboard_url,
                         filters=[("class_name", "=", REPLICA_CLASS), ("state", "=", "ALIVE")])
    assert len(actors) == 1, actors
    return actors[0].pid


def test_the_gateway_replica_imports_neither_torch_nor_transformers(
    admin, alice, tmp_path, ray_job_address,
):
    # a model import (the work reaches the import task, which refuses the folder) ...
    (tmp_path / "notes.txt").write_text("not a model")
    err = assert_error(admin.post("/v1/models/import", json={"source": str(tmp_path)}),
                       422, "invalid_argument")
    assert (err["field"], "not a Hugging Face model folder" in err["message"]) == (
        "source", True)
    # ... a dataset upload registered by a task, and a refused one with line details
    assert upload(alice, "layering-check").status_code == 201
    err = assert_error(upload(alice, "layering-bad", "{not json\n"), 422, "invalid_argument")
    assert err["details"][0]["line"] == 1

    assert_replica_is_light(ray_job_address)


@pytest.mark.slow
def test_the_replica_stays_light_after_a_real_conversion(admin, smollm2_folder, ray_job_address):
    r = admin.post("/v1/models/import", json={"source": str(smollm2_folder),
                                              "name": "smollm2-layering"})
    assert r.status_code == 201, r.text
    assert_replica_is_light(ray_job_address)


def assert_replica_is_light(dashboard_url: str) -> None:
    """The gateway replica maps no libtorch and has imported none of :data:`HEAVY`."""
    from ray import serve

    maps = Path(f"/proc/{_replica_pid(dashboard_url)}/maps").read_text()
    assert ".so" in maps  # the process exists and its maps are readable
    assert "libtorch" not in maps
    handle = serve.get_deployment_handle("Gateway", app_name="gateway")
    modules = set(handle.loaded_modules.remote().result(timeout_s=60))
    assert {"fastapi", "catalog", "serve_apps"} <= modules  # it is the gateway's process
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))

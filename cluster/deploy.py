"""Deploy Model Garden's Serve applications onto a connected Ray cluster."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray import serve

from cluster.serve_config import (
    CONSOLE_APP,
    GATEWAY_APP,
    LLM_APP,
    MEDIA_APP,
    AppSpec,
    ServeSettings,
    deploy_config,
    serve_config,
)
from serve_apps.gateway import GatewayConfig
from serve_apps.gateway.builder import replica_env

if TYPE_CHECKING:
    from serve_apps.llm import LLMAppConfig

log = logging.getLogger(__name__)

__all__ = ["CONSOLE_APP", "GATEWAY_APP", "LLM_APP", "MEDIA_APP", "AppSpec", "Deployed",
           "app_running", "deploy_apps", "deploy_llm_app", "proxy_url"]


@dataclass(frozen=True)
class Deployed:
    """What :func:`deploy_apps` started: the Serve HTTP base URL, the app names and the
    route prefixes of the apps it was handed."""

    http_url: str
    apps: tuple[str, ...]
    routes: tuple[tuple[str, str | None], ...] = ()  # (name, route prefix) of each AppSpec

    @property
    def api_url(self) -> str:
        return self.http_url

    @property
    def openai_base_url(self) -> str:
        return f"{self.http_url}/openai/v1"

    @property
    def console_url(self) -> str | None:
        """The web console's URL, when it was deployed (as :data:`CONSOLE_APP`)."""
        prefix = dict(self.routes).get(CONSOLE_APP)
        return None if prefix is None else f"{self.http_url}{prefix}/"


def proxy_url(host: str, port: int) -> str:
    """The URL of Serve's HTTP proxy listening on ``host:port``, as a process of the
    cluster's machine reaches it: loopback when the proxy listens on every interface
    (``0.0.0.0``, ``::``)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def deploy_apps(
    *, http_host: str = "127.0.0.1", http_port: int = 8000,
    gateway: GatewayConfig | None = None, llm_model: str | None = None,
    llm_config: LLMAppConfig | Mapping[str, Any] | None = None,
    llm_apps: Mapping[str, LLMAppConfig | Mapping[str, Any]] | None = None, media: bool = True,
    apps: Sequence[Callable[[str, str | None], AppSpec]] = (), timeout_s: float = 600.0,
) -> Deployed:
    """Start Serve's HTTP proxy on ``http_host:http_port`` and deploy Model Garden's Serve
    config (:func:`cluster.serve_config.serve_config`, the document a KubeRay RayService
    holds) as ``serve deploy`` does: the gateway at ``/``; with ``media`` the MediaRouter
    app (no HTTP route of its own), whose routes the gateway mounts; each of ``apps``,
    called with the proxy's URL as a replica reaches it (:func:`proxy_url`) and the Ray
    dashboard's URL (``garden``'s web console at ``/ui``, which calls the gateway through
    that proxy); and, when ``llm_model`` (a catalog base model) or ``llm_config``
    (:class:`serve_apps.llm.LLMAppConfig`) is given, the LLM app at its route prefix;
    ``llm_apps`` adds LLM apps by Serve app name (one per base model, each with its own
    scaling).
    Replicas get the deployer's ``GARDEN_HOME``, ``GARDEN_DATABASE_URL`` and
    ``RAY_AUTH_MODE`` as the apps' runtime_env; provider tokens come from their nodes'
    environment (``MediaConfig.from_env``).

    Needs a connected Ray (``ray.init(address=...)``) whose catalog actor exists.
    Returns once each app runs.

    Raises:
        RuntimeError: an app failed to deploy (Serve's message).
        TimeoutError: the apps did not all run within ``timeout_s`` seconds.
    """
    from serve_apps.llm import LLMAppConfig

    serve.start(http_options={"host": http_host, "port": http_port})
    gateway = gateway or GatewayConfig()
    if gateway.dashboard_url is None:
        # Replicas cannot discover the job API's address; this driver can.
        from ray_jobs.submit import dashboard_address

        gateway = gateway.model_copy(update={"dashboard_url": dashboard_address()})
    llm = {}
    if llm_model or llm_config:
        llm[LLM_APP] = LLMAppConfig.model_validate(llm_config or {"model": llm_model})
    for name, config in (llm_apps or {}).items():
        llm[name] = LLMAppConfig.model_validate(config)
    settings = ServeSettings(
        http_host=http_host, http_port=http_port, gateway=gateway, media=media, llm=llm,
        env_vars=replica_env(gateway.model_copy(update={"env_vars": {}})))
    built = [build(proxy_url(http_host, http_port), gateway.dashboard_url) for build in apps]
    doc = serve_config(settings, built)
    names = deploy_config(doc, timeout_s=timeout_s)
    return Deployed(http_url=f"http://{http_host}:{http_port}", apps=names,
                    routes=tuple((spec.name, spec.route_prefix) for spec in built))


def deploy_llm_app(config: LLMAppConfig | Mapping[str, Any], name: str = LLM_APP) -> str:
    """Deploy, or redeploy with a new config, the LLM app alone (name ``name``, default
    :data:`LLM_APP`, at ``config.route_prefix``) on the connected cluster's running Serve;
    return its name. Several LLM apps (a base model and a merged one, say) run side by side
    under different names and route prefixes.

    ``config`` is a :class:`serve_apps.llm.LLMAppConfig` or the same as a mapping (the
    ``args`` of ``serve_apps/llm/llm.yaml``), e.g. ``{"model": "SmolLM2-135M-Instruct",
    "engine_args": {"max_model_len": 1024}}``. Blocks until the app runs (the engine loads
    in about a minute on CPU).

    Raises:
        pydantic.ValidationError: ``config`` is not a valid LLMAppConfig.
        RuntimeError: the app failed to deploy (``serve.run``).
    """
    from serve_apps.llm import LLMAppConfig, build_llm_app

    config = LLMAppConfig.model_validate(config)
    log.info("deploying the LLM app for %s (engine load takes about a minute)", config.model)
    serve.run(build_llm_app(config), name=name, route_prefix=config.route_prefix)
    return name


def app_running(name: str) -> bool:
    """True when the connected cluster's Serve runs application ``name`` (status RUNNING)."""
    apps = serve.status().applications
    return name in apps and apps[name].status == "RUNNING"

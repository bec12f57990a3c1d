"""Deploy Model Garden's Serve applications onto a connected Ray cluster."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve import Application

from cluster.work import RayWork
from serve_apps.gateway import GatewayConfig, build_gateway_app
from serve_apps.gateway.builder import replica_env

if TYPE_CHECKING:
    from serve_apps.llm import LLMAppConfig

log = logging.getLogger(__name__)

GATEWAY_APP = "gateway"
LLM_APP = "llm"
MEDIA_APP = "media"
#: The name under which an app of :func:`deploy_apps`' ``apps`` counts as the web console
#: (:attr:`Deployed.console_url`).
CONSOLE_APP = "console"


@dataclass(frozen=True)
class ServeApp:
    """A Serve application built by its owner (``garden``: the web console) for
    :func:`deploy_apps` to run as ``name`` at ``route_prefix``."""

    name: str
    app: Application
    route_prefix: str


@dataclass(frozen=True)
class Deployed:
    """What :func:`deploy_apps` started: the Serve HTTP base URL, the app names and the
    route prefixes of the apps it was handed."""

    http_url: str
    apps: tuple[str, ...]
    routes: tuple[tuple[str, str], ...] = ()  # (name, route prefix) of each ServeApp

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
    llm_config=None, media: bool = True,
    apps: Sequence[Callable[[str, str | None], ServeApp]] = (),
) -> Deployed:
    """Start Serve's HTTP proxy on ``http_host:http_port`` and deploy the gateway at ``/``
    and, when ``llm_model`` (a catalog base model) or ``llm_config``
    (:class:`serve_apps.llm.LLMAppConfig`) is given, the LLM app at ``/openai``. With
    ``media`` the MediaRouter app (no HTTP route of its own) is deployed first and the
    gateway mounts the media routes that call it. Provider tokens come from the
    replicas' environment (``MediaConfig.from_env``). Each of ``apps`` is called with the
    proxy's URL as a replica reaches it (:func:`proxy_url`) and the Ray dashboard's URL
    once the gateway runs, and its application deployed (``garden``'s web console at
    ``/ui``, which calls the gateway through that proxy); building waits until then, as
    what it imports (Gradio, Ray) must. The gateway's heavy work (model
    import, dataset registration, job submission) runs as Ray tasks
    (:class:`cluster.work.RayWork`).

    Needs a connected Ray (``ray.init(address=...)``) whose catalog actor exists.
    ``serve.run`` returns once each app is running and raises ``RuntimeError`` when
    one fails to deploy.
    """
    serve.start(http_options={"host": http_host, "port": http_port})
    gateway = gateway or GatewayConfig()
    if gateway.dashboard_url is None:
        # Replicas cannot discover the job API's address; this driver can.
        from ray_jobs.submit import dashboard_address

        gateway = gateway.model_copy(update={"dashboard_url": dashboard_address()})
    names = []
    if media:
        from serve_apps.media.builder import build_media_app

        env = replica_env(gateway)
        serve.run(build_media_app(http=False, runtime_env={"env_vars": env}), name=MEDIA_APP,
                  route_prefix=None)
        names.append(MEDIA_APP)
        gateway = gateway.model_copy(update={"media_app": MEDIA_APP})
    work = RayWork(dashboard_url=gateway.dashboard_url)
    serve.run(build_gateway_app(gateway, work), name=GATEWAY_APP, route_prefix="/")
    names.append(GATEWAY_APP)
    built = [build(proxy_url(http_host, http_port), gateway.dashboard_url) for build in apps]
    for extra in built:
        serve.run(extra.app, name=extra.name, route_prefix=extra.route_prefix)
        names.append(extra.name)
    if llm_model or llm_config:
        names.append(deploy_llm_app(llm_config or {"model": llm_model}))
    return Deployed(http_url=f"http://{http_host}:{http_port}", apps=tuple(names),
                    routes=tuple((extra.name, extra.route_prefix) for extra in built))


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

"""Build the LLM Serve application: one deployment, ``LLMServer``, whose replicas each parse
the OpenAI routes and run their own vLLM engine (:class:`serve_apps.llm.ingress.LLMIngress`).

``build_llm_app(config)`` for Python callers; ``app_builder(args)`` for a Serve
config file (``import_path: serve_apps.llm:app_builder``, ``args:`` = an
:class:`LLMAppConfig` as a mapping). See ``serve_apps/llm/llm.yaml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve import Application

from catalog.port import AsyncCatalogPort
from serve_apps.llm.config import LLMAppConfig

if TYPE_CHECKING:
    from serve_apps.llm.server import EngineClass


#: The engine deployment's name: its replicas are the engine replicas
#: (``ServeReplica:<app>:LLMServer``); a Serve config's ``deployments`` override names it.
DEPLOYMENT_NAME = "LLMServer"


def build_llm_app(
    config: LLMAppConfig, *, engine_cls: EngineClass | None = None,
    catalog: AsyncCatalogPort | None = None,
) -> Application:
    """The OpenAI-compatible LLM application for ``config``.

    Deploy it with ``serve.run(app, name="llm", route_prefix=config.route_prefix)``.

    Args:
        config: which catalog base model and how to run it.
        engine_cls: vLLM engine class (default ``vllm.v1.engine.async_llm.AsyncLLM``).
        catalog: the catalog port of the replicas (default: each replica opens the
            cluster's catalog actor).
    """
    from serve_apps.llm.ingress import LLMIngress

    # scaled and placed by config.deployment
    opts = config.deployment
    deployment = serve.deployment(LLMIngress, name=DEPLOYMENT_NAME).options(
        health_check_period_s=30, health_check_timeout_s=60, **opts.serve_kwargs()
    )
    return deployment.bind(config, engine_cls, catalog)


def app_builder(args: dict[str, Any]) -> Application:
    """Serve config-file entry point: ``args`` is an :class:`LLMAppConfig` mapping.

    Raises:
        pydantic.ValidationError: ``args`` is not a valid LLMAppConfig.
    """
    return build_llm_app(LLMAppConfig.model_validate(args))

"""vLLM on Ray Serve with an OpenAI-compatible API, multi-LoRA and per-request carbon.

Public face (Ray Serve LLM's habit: a few names here, the rest in modules):
``LLMAppConfig``, ``build_llm_app``, ``app_builder`` (for ``serve run`` config files).
"""

from serve_apps.llm.builder import app_builder, build_llm_app
from serve_apps.llm.config import DeploymentOptions, EngineArgs, LLMAppConfig

__all__ = ["DeploymentOptions", "EngineArgs", "LLMAppConfig", "app_builder", "build_llm_app"]

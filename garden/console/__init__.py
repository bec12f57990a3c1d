"""The web console: a Gradio app that the cluster serves at ``/ui``, beside the gateway.

It is one more client of the API, like the ``garden`` CLI: every tab calls the gateway
through :class:`garden.Client` with the signed-in user's key and has no logic of its
own, so what a user sees follows the API's ownership rules. Layout as LLaMA-Factory's
LlamaBoard: :mod:`garden.console.app` builds the page, one module per tab under
:mod:`garden.console.tabs`, and :mod:`garden.console.serve` deploys it on Ray Serve.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConsoleConfig", "build_console", "create_app"]


def __getattr__(name: str) -> Any:
    # Gradio loads on first use, so the Serve config's names (garden.console.serve's
    # ROUTE_PREFIX and CONSOLE_BUILDER) are read without it
    if name in __all__:
        from garden.console import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

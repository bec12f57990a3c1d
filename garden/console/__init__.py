"""The web console: a Gradio app that the cluster serves at ``/ui``, beside the gateway.

It is one more client of the API, like the ``garden`` CLI: every tab calls the gateway
through :class:`garden.Client` with the signed-in user's key and has no logic of its
own, so what a user sees follows the API's ownership rules. Layout as LLaMA-Factory's
LlamaBoard: :mod:`garden.console.app` builds the page, one module per tab under
:mod:`garden.console.tabs`, and :mod:`garden.console.serve` deploys it on Ray Serve.
"""

from garden.console.app import ConsoleConfig, build_console, create_app

__all__ = ["ConsoleConfig", "build_console", "create_app"]

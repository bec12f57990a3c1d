"""The console's page: sign-in, then one tab per area (:mod:`garden.console.tabs`).

The API key is typed once into a password box, checked with ``GET /v1/whoami``, and
kept in a ``gr.State``: per browser session, on the server, never sent back to the
page, never logged (Gradio's run history, which would record inputs, is off).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from fastapi import FastAPI

from garden.console.common import ConsoleConfig, api, shows_errors
from garden.console.tabs import carbon, datasets, media, models, overview, playground, training

TITLE = "Model Garden"
#: The tabs in order: (title, module with ``render(config, key, signed_in, tab)``).
TABS = (("Overview", overview), ("Datasets", datasets), ("Training", training),
        ("Models", models), ("Playground", playground), ("Carbon & usage", carbon),
        ("Media", media))


def _sign_in(config: ConsoleConfig):
    @shows_errors
    def sign_in(key: str) -> tuple[str, dict[str, Any]]:
        """Check the key; its output is the session state only, so a refused key shows
        the error toast without covering the sign-in box."""
        key = (key or "").strip()
        if not key:
            raise gr.Error("Enter an API key (gk_...).")
        with api(config, key) as client:
            me = client.whoami()
        return key, me

    def signed_in(me: dict[str, Any]) -> tuple[Any, ...]:
        # the key box is emptied: the key lives on in the session state only
        who = f"Signed in as **{me['user_id']}** ({me['role']})"
        return (gr.update(value=""), gr.update(visible=False), who, gr.update(visible=True),
                gr.update(visible=True))

    def sign_out() -> tuple[Any, ...]:
        return (None, {}, gr.update(visible=True), "", gr.update(visible=False),
                gr.update(visible=False))

    return sign_in, signed_in, sign_out


def build_console(config: ConsoleConfig | None = None) -> gr.Blocks:
    """The console as a ``gr.Blocks`` (not launched): a sign-in box, then the tabs
    Overview, Datasets, Training, Models, Playground, Carbon & usage and Media.

    Each tab module's ``render(config, key, signed_in, tab)`` adds its components; ``key``
    is the session's API key state, ``signed_in`` an event that fires after sign-in, on
    which tabs load their first data, and ``tab`` the ``gr.Tab``, whose ``select`` reloads
    its lists (a dataset uploaded on one tab is then offered on the next)."""
    config = config or ConsoleConfig()
    sign_in, after_sign_in, sign_out = _sign_in(config)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        key = gr.State(None)
        me = gr.State({})
        with gr.Row():
            gr.Markdown(f"## {TITLE}")
            who = gr.Markdown("", elem_id="whoami")
            out = gr.Button("Sign out", visible=False, size="sm", elem_id="signout")
        with gr.Column(visible=True, elem_id="signin") as signin_box:
            secret = gr.Textbox(label="API key", type="password", placeholder="gk_...",
                                elem_id="signin-key")
            go = gr.Button("Sign in", variant="primary", elem_id="signin-button")
        with gr.Tabs(visible=False, elem_id="tabs") as tabs:
            shown = [secret, signin_box, who, tabs, out]
            signed_in = gr.on([go.click, secret.submit], sign_in, secret, [key, me]).success(
                after_sign_in, me, shown, show_progress="hidden")
            for title, module in TABS:
                with gr.Tab(title, id=module.__name__.rsplit(".", 1)[-1]) as tab:
                    module.render(config, key, signed_in, tab)
        out.click(sign_out, None, [key, me, signin_box, who, tabs, out])
    return page


def create_app(config: ConsoleConfig | None = None) -> FastAPI:
    """The console as an ASGI app serving the page at its root (mount it under a route
    prefix, e.g. Serve's ``/ui``: Gradio reads the prefix from the request)."""
    return gr.mount_gradio_app(FastAPI(title=TITLE, docs_url=None, redoc_url=None),
                               build_console(config), path="", run_history=False,
                               footer_links=[], theme=gr.themes.Soft())

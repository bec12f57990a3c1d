"""What the tabs share: the signed-in client, errors shown as Gradio toasts, and small
conversions of API answers into tables."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import gradio as gr
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalog.schemas import Model
from garden.client import Client
from garden.errors import GardenError

F = TypeVar("F", bound=Callable[..., Any])

#: Shown when a tab is used before signing in (the tabs are hidden until then).
SIGN_IN_FIRST = "Sign in with an API key first."


class ConsoleConfig(BaseModel):
    """Where the console finds the API, and how it refreshes. Validated on construction."""

    model_config = ConfigDict(extra="forbid")

    api_url: str = Field("http://127.0.0.1:8000",
                         description="The gateway's base URL as the console's replica "
                         "reaches it (the Serve HTTP proxy).")
    dashboard_url: str | None = Field(
        None, description="The Ray dashboard's URL linked from the overview; None hides "
        "the link.")
    refresh_s: float = Field(2.0, gt=0, le=60,
                             description="Seconds between refreshes of a running job's page.")
    gallery_size: int = Field(24, ge=1, le=200,
                              description="Most images the media gallery shows.")
    timeout_s: float = Field(60.0, gt=0, description="Timeout of one API request, s.")


@contextmanager
def api(config: ConsoleConfig, key: str | None) -> Iterator[Client]:
    """A :class:`garden.Client` on ``config.api_url`` with the signed-in ``key``.

    Raises gr.Error when nobody is signed in."""
    if not key:
        raise gr.Error(SIGN_IN_FIRST)
    client = Client(config.api_url, api_key=key, timeout_s=config.timeout_s)
    try:
        yield client
    finally:
        client.close()


def error_text(exc: GardenError) -> str:
    """``"422 invalid_argument: <message> (field: x)"`` for an API error."""
    err = exc.error
    field = f" (field: {err.field})" if err.field else ""
    return f"{exc.status} {err.code}: {err.message}{field}"


def invalid_text(exc: ValidationError) -> str:
    """``"invalid hyperparameters.learning_rate: Input should be ..."`` for each error of
    a request the client refused before sending it."""
    return "; ".join(f"invalid {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                     for e in exc.errors())


def shows_errors(fn: F) -> F:
    """Run a Gradio handler, turning an API error into a ``gr.Error`` toast that names
    the status, the code and the field (a request the client's schema refused: each
    field and why); generators are wrapped item by item."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except GardenError as exc:
                raise gr.Error(error_text(exc)) from exc
            except ValidationError as exc:
                raise gr.Error(invalid_text(exc)) from exc
        return gen  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GardenError as exc:
            raise gr.Error(error_text(exc)) from exc
        except ValidationError as exc:
            raise gr.Error(invalid_text(exc)) from exc
    return call  # type: ignore[return-value]


def when(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC), empty for None."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def grams(kg: float | None) -> str:
    """Emissions in kg CO2eq shown in grams, 3 significant digits."""
    return f"{(kg or 0.0) * 1000:.3g} g"


def bounds(model: type[BaseModel], field: str) -> dict[str, float]:
    """``{"minimum": .., "maximum": ..}`` of a pydantic field's numeric bounds, for a
    ``gr.Number``/``gr.Slider``; exclusive bounds are given as the inclusive ones."""
    prop = model.model_json_schema()["properties"][field]
    if "anyOf" in prop:  # Optional[...] fields
        prop = next(p for p in prop["anyOf"] if p.get("type") != "null")
    out = {}
    for key, name in (("minimum", "minimum"), ("exclusiveMinimum", "minimum"),
                      ("maximum", "maximum"), ("exclusiveMaximum", "maximum")):
        if key in prop:
            out[name] = prop[key]
    return out


def readable_models(client: Client, kind: str | None = None) -> list[Model]:
    """The models the signed-in user may use: their own (newest first), then the
    published ones they do not own; at most 100 of each (``GET /v1/models``)."""
    own = client.models.list(kind=kind, page_size=100).items
    shared = client.models.list(kind=kind, published=True, page_size=100).items
    return list({m.id: m for m in [*own, *shared]}.values())


def choices(items: list[Any], label: Callable[[Any], str]) -> list[tuple[str, str]]:
    """Dropdown choices ``(label, id)`` of rows with an ``id``."""
    return [(label(item), item.id) for item in items]

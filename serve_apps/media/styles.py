"""Prompt styles: apply a prompt helper version (its text and placement) to a prompt.

Placements (:class:`catalog.schemas.PromptPlacement`):

- ``append``:  ``"a cat" + "oil painting"  -> "a cat, oil painting"``
- ``prefix``:  ``"oil painting" + "a cat"  -> "oil painting, a cat"``
- ``replace``: the helper's text is the prompt; ``{prompt}`` in it is replaced by the
  user's prompt: ``"{prompt}, in the style of Monet"`` with ``"a cat"`` ->
  ``"a cat, in the style of Monet"``; without ``{prompt}`` the text replaces it all.

A theme (:class:`catalog.schemas.ThemeHelper`) is an ordered list of helpers applied
one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from catalog.schemas import PromptHelperVersion, PromptPlacement

SEPARATOR = ", "


@dataclass(frozen=True)
class StyledPrompt:
    """``prompt`` as sent to the provider; ``applied`` is the text the styles added
    (joined by " | " when several helpers applied), stored on the Image row."""

    prompt: str
    applied: str | None


def apply_style(prompt: str, text: str, placement: PromptPlacement | str) -> StyledPrompt:
    """Apply one style ``text`` at ``placement`` to ``prompt`` (see module docstring).

    Blank text leaves the prompt unchanged; surrounding whitespace and trailing
    commas are trimmed so joins never double the separator.
    """
    placement = PromptPlacement(placement)
    base = prompt.strip()
    style = text.strip().strip(",").strip()
    if not style:
        return StyledPrompt(base, None)
    if placement == PromptPlacement.append:
        return StyledPrompt(f"{base.rstrip(',').rstrip()}{SEPARATOR}{style}", style)
    if placement == PromptPlacement.prefix:
        return StyledPrompt(f"{style}{SEPARATOR}{base}", style)
    if "{prompt}" in style:
        return StyledPrompt(style.replace("{prompt}", base), style)
    return StyledPrompt(style, style)


def apply_styles(prompt: str, versions: Sequence[PromptHelperVersion]) -> StyledPrompt:
    """Apply several helper versions in order (a theme); ``applied`` joins their texts."""
    applied: list[str] = []
    current = prompt.strip()
    for version in versions:
        styled = apply_style(current, version.text, version.placement)
        current = styled.prompt
        if styled.applied:
            applied.append(styled.applied)
    return StyledPrompt(current, " | ".join(applied) or None)

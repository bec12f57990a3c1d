"""Prompt styles: apply a prompt helper version (its text and placement) to a prompt.

Placements (:class:`catalog.schemas.PromptPlacement`):

- ``append``:  ``"a cat" + "oil painting"  -> "a cat, oil painting"``
- ``prefix``:  ``"oil painting" + "a cat"  -> "oil painting, a cat"``
- ``replace``: the helper's text is the prompt; ``{prompt}`` in it is replaced by the
  user's prompt: ``"{prompt}, in the style of Monet"`` with ``"a cat"`` ->
  ``"a cat, in the style of Monet"``; without ``{prompt}`` the text replaces it all.

A theme (:class:`catalog.schemas.ThemeHelper`) is an ordered list of helpers applied
one after the other, then its own text (appended). Each helper version's placement
depends on the prompt type (``image`` or ``video``, seed 001's ``PromptPlacement``);
its negative text joins the negative prompt and its style presets (provider -> preset)
are offered to the provider chosen, the later style winning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from catalog.schemas import PromptHelperVersion, PromptPlacement

SEPARATOR = ", "


@dataclass(frozen=True)
class StyledPrompt:
    """``prompt`` as sent to the provider; ``applied`` is the text the styles added
    (joined by " | " when several helpers applied), stored on the Image row;
    ``negative_text`` the styles' negative texts joined by ", " (None: none);
    ``style_presets`` provider -> preset from the styles."""

    prompt: str
    applied: str | None
    negative_text: str | None = None
    style_presets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StylePiece:
    """One text to apply: a helper version's (for one prompt type) or a theme's own."""

    text: str
    placement: PromptPlacement | str = PromptPlacement.append
    negative_text: str | None = None
    style_presets: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, version: PromptHelperVersion, prompt_type: str = "image") -> StylePiece:
        """The piece ``version`` gives a prompt of ``prompt_type`` (image, video)."""
        return cls(version.text, version.placement_for(prompt_type), version.negative_text,
                   dict(version.style_presets))


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


def apply_styles(prompt: str, versions: Sequence[PromptHelperVersion | StylePiece],
                 prompt_type: str = "image") -> StyledPrompt:
    """Apply several helper versions (or pieces) in order (a theme); ``applied`` joins
    their texts, ``negative_text`` their negative texts, later presets win."""
    applied: list[str] = []
    negatives: list[str] = []
    presets: dict[str, str] = {}
    current = prompt.strip()
    for item in versions:
        piece = item if isinstance(item, StylePiece) else StylePiece.of(item, prompt_type)
        styled = apply_style(current, piece.text, piece.placement)
        current = styled.prompt
        if styled.applied:
            applied.append(styled.applied)
        if piece.negative_text and piece.negative_text.strip():
            negatives.append(piece.negative_text.strip().strip(","))
        presets.update(piece.style_presets)
    return StyledPrompt(current, " | ".join(applied) or None,
                        SEPARATOR.join(negatives) or None, presets)


def join_negative(*parts: str | None) -> str | None:
    """The user's negative prompt and the styles' negative text, joined by ", "."""
    kept = [p.strip() for p in parts if p and p.strip()]
    return SEPARATOR.join(kept) or None

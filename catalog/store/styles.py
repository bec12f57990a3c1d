"""The styles aggregate: the repositories of prompt styles (prompt helpers) and themes, and
their numbered, immutable versions. Both kinds share one versioned implementation
(:class:`Versioned` and the ``_*_version*`` methods of :class:`StylesMixin`): a row is
created with its version 1, later versions are numbered atomically in SQL, read one by one
or all together, and a fork copies the current version into a new private row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import NotFound
from catalog.store.base import StoreBase
from catalog.store.marks import idempotent
from catalog.store.repo import RepoField, validated

Item = TypeVar("Item", bound=BaseModel)
V = TypeVar("V", bound=BaseModel)


@dataclass(frozen=True)
class Versioned(Generic[Item, V]):
    """A kind of row whose content lives in numbered, immutable versions.

    Attributes:
        what: its name in messages (``prompt helper``, ``theme``).
        read: the row's read schema (names its repository).
        versions: the version table's row class.
        owner: the version table's column holding the row's id.
        content: the schema of the versioned fields.
        read_version: the schema a version is returned as.
        on_row: the row also keeps its current version's content (a theme, so that it is
            read in one query).
    """

    what: str
    read: type[Item]
    versions: type[Any]
    owner: str
    content: type[BaseModel]
    read_version: type[V]
    on_row: bool = False

    def version_row(self, owner_id: str, version: int, spec: BaseModel) -> Any:
        """A new version row of row ``owner_id`` from the versioned fields of ``spec``."""
        return self.versions(
            id=t.new_id(self.versions.id_prefix), version=version, **{self.owner: owner_id},
            **spec.model_dump(mode="json", include=set(self.content.model_fields)))

    def find(self, session: Session, owner_id: str, version: int) -> Any | None:
        """Version ``version`` of row ``owner_id``, or None."""
        return session.scalars(select(self.versions).where(
            getattr(self.versions, self.owner) == owner_id, self.versions.version == version,
        )).first()


PROMPT_HELPERS = Versioned("prompt helper", s.PromptHelper, t.PromptHelperVersionRow,
                           "helper_id", s.HelperText, s.PromptHelperVersion)
THEMES = Versioned("theme", s.ThemeHelper, t.ThemeHelperVersionRow, "theme_id", s.ThemeText,
                   s.ThemeHelperVersion, on_row=True)


class StylesMixin(StoreBase):
    """Prompt styles and themes, versioned."""

    prompt_helpers = RepoField(
        t.PromptHelperRow, s.PromptHelper,
        filters=("name", "category", "is_builtin", "is_public", "forked_from_id"),
        updatable=("name", "description", "category", "is_public"),
        tag_kind=s.RowKind.prompt_helper, public_column="is_public",
    )
    theme_helpers = RepoField(
        t.ThemeHelperRow, s.ThemeHelper,
        filters=("name", "category", "is_builtin", "is_public", "is_featured",
                 "is_active", "forked_from_id"),
        updatable=("name", "description", "category", "is_public", "is_featured",
                   "is_active"),
        tag_kind=s.RowKind.theme_helper, public_column="is_public",
    )

    # ----------------------------------------------------------------- prompt helpers

    def create_prompt_helper(self, request: s.PromptHelperCreate) -> s.PromptHelper:
        """Create a helper and its version 1 in one transaction. Raises Conflict on name."""
        return self._create_versioned(PROMPT_HELPERS, request)

    def add_prompt_helper_version(
        self, helper_id: str, text: str, placement: s.PromptPlacement | str | None = None, *,
        negative_text: str | None = None, placements: dict[str, str] | None = None,
        style_presets: dict[str, str] | None = None, notes: str | None = None,
    ) -> s.PromptHelperVersion:
        """Add the next version of a helper and make it current; the counter increments
        atomically in SQL (seed 001: "enforce atomic version increments"), so two
        concurrent updates get two numbers.

        ``placement`` defaults to the current version's; ``placements`` and
        ``style_presets`` default to empty. Raises NotFound, InvalidArgument.
        """
        def content(session: Session, version: int) -> s.HelperText:
            where = placement
            if where is None:
                previous = PROMPT_HELPERS.find(session, helper_id, version - 1)
                where = previous.placement if previous is not None else None
            return validated(s.HelperText, {
                "text": text, "negative_text": negative_text,
                "placement": where or s.PromptPlacement.append,
                "placements": placements or {}, "style_presets": style_presets or {},
                "notes": notes})

        return self._add_version(PROMPT_HELPERS, helper_id, content)

    @idempotent
    def get_prompt_helper_version(
        self, helper_id: str, version: int | None = None
    ) -> s.PromptHelperVersion:
        """A helper's ``version`` (default: current). Raises NotFound."""
        return self._get_version(PROMPT_HELPERS, helper_id, version)

    @idempotent
    def list_prompt_helper_versions(self, helper_id: str) -> list[s.PromptHelperVersion]:
        """Every version of a helper, oldest first. Raises NotFound."""
        return self._list_versions(PROMPT_HELPERS, helper_id)

    def fork_prompt_helper(
        self, helper_id: str, *, name: str, user_id: str | None = None
    ) -> s.PromptHelper:
        """Copy a helper's current version into a new private helper (version 1) that
        remembers its origin in ``forked_from_id`` (seed 001 ``PromptHelper.fork``); later
        versions of either do not change the other. Raises NotFound, Conflict (name
        taken)."""
        return self._fork(PROMPT_HELPERS, helper_id, name=name, user_id=user_id)

    # ----------------------------------------------------------------- themes

    def create_theme_helper(self, request: s.ThemeHelperCreate) -> s.ThemeHelper:
        """Create a theme and its version 1 in one transaction. Raises Conflict on name."""
        return self._create_versioned(THEMES, request)

    def add_theme_helper_version(
        self, theme_id: str, *, text: str | None = None, negative_text: str | None = None,
        prompt_helper_ids: Sequence[str] = (), notes: str | None = None,
    ) -> s.ThemeHelperVersion:
        """Add the next version of a theme (its text and ordered recommended styles) and
        make it the theme's current content; numbered atomically like helper versions.
        Raises NotFound, InvalidArgument."""
        spec = validated(s.ThemeText, {
            "text": text, "negative_text": negative_text,
            "prompt_helper_ids": list(prompt_helper_ids), "notes": notes})
        return self._add_version(THEMES, theme_id, lambda _session, _version: spec)

    @idempotent
    def get_theme_helper_version(
        self, theme_id: str, version: int | None = None
    ) -> s.ThemeHelperVersion:
        """A theme's ``version`` (default: current). Raises NotFound."""
        return self._get_version(THEMES, theme_id, version)

    @idempotent
    def list_theme_helper_versions(self, theme_id: str) -> list[s.ThemeHelperVersion]:
        """Every version of a theme, oldest first. Raises NotFound."""
        return self._list_versions(THEMES, theme_id)

    def fork_theme_helper(
        self, theme_id: str, *, name: str, user_id: str | None = None
    ) -> s.ThemeHelper:
        """Copy a theme's current content into a new private theme (version 1) that
        remembers its origin. Raises NotFound, Conflict (name taken)."""
        return self._fork(THEMES, theme_id, name=name, user_id=user_id)

    # ----------------------------------------------------------------- either kind

    def _create_versioned(self, kind: Versioned[Item, V], request: BaseModel) -> Item:
        """Insert a row of ``kind`` from a ``*Create`` request and its version 1 from the
        request's versioned fields, in one transaction. Raises Conflict, InvalidArgument."""
        repo = self.repo(kind.read)
        with self.session() as session:
            row = repo._insert(session, request, current_version=1)
            session.add(kind.version_row(row.id, 1, request))
            session.flush()
            return validated(kind.read, row)

    def _add_version(
        self, kind: Versioned[Item, V], owner_id: str,
        content: Callable[[Session, int], BaseModel],
    ) -> V:
        """Number the next version of row ``owner_id`` (one ``UPDATE ... RETURNING`` of its
        ``current_version``, so concurrent calls get distinct numbers), store
        ``content(session, number)`` as that version, and, for a kind that keeps its
        content on the row, copy it there. Raises NotFound, and whatever ``content``
        raises; nothing is written then."""
        owner: Any = self.repo(kind.read).row
        with self.session() as session:
            version = session.scalar(
                update(owner).where(owner.id == owner_id)
                .values(current_version=owner.current_version + 1, updated_at=t.utcnow())
                .returning(owner.current_version))
            if version is None:
                raise NotFound(f"{owner.__tablename__} {owner_id!r} not found", field="id")
            spec = content(session, version)
            if kind.on_row:
                session.execute(update(owner).where(owner.id == owner_id)
                                .values(**spec.model_dump()))
            row = kind.version_row(owner_id, version, spec)
            session.add(row)
            session.flush()
            return kind.read_version.model_validate(row)

    def _get_version(self, kind: Versioned[Item, V], owner_id: str, version: int | None) -> V:
        """Version ``version`` (default: the current one) of row ``owner_id``. Raises
        NotFound."""
        with self.session() as session:
            owner = self.repo(kind.read)._get_row(session, owner_id)
            row = kind.find(session, owner_id, version or owner.current_version)
            if row is None:
                raise NotFound(f"{kind.what} {owner_id!r} has no version {version}",
                               field="version")
            return kind.read_version.model_validate(row)

    def _list_versions(self, kind: Versioned[Item, V], owner_id: str) -> list[V]:
        """Every version of row ``owner_id``, oldest first. Raises NotFound."""
        with self.session() as session:
            self.repo(kind.read)._get_row(session, owner_id)
            rows = session.scalars(select(kind.versions).where(
                getattr(kind.versions, kind.owner) == owner_id
            ).order_by(kind.versions.version))
            return [kind.read_version.model_validate(r) for r in rows]

    def _fork(self, kind: Versioned[Item, V], owner_id: str, *, name: str,
              user_id: str | None) -> Item:
        """A new private row of ``kind`` named ``name``, with version 1 copied from the
        current version of row ``owner_id`` and ``forked_from_id`` naming it. Raises
        NotFound, Conflict (name taken)."""
        repo = self.repo(kind.read)
        with self.session() as session:
            src = repo._get_row(session, owner_id)
            current = src if kind.on_row else kind.find(session, owner_id, src.current_version)
            if current is None:
                raise NotFound(f"{kind.what} {owner_id!r} has no version "
                               f"{src.current_version}", field="version")
            content = kind.content.model_validate(current)
            row = repo.row(
                id=t.new_id(repo.row.id_prefix), name=name, description=src.description,
                category=src.category, is_builtin=False, is_public=False, current_version=1,
                forked_from_id=src.id, user_id=user_id,
                **(content.model_dump() if kind.on_row else {}),
            )
            session.add(row)
            session.flush()
            session.add(kind.version_row(row.id, 1, content))
            session.flush()
            return validated(kind.read, row)

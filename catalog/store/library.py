"""The library aggregate: the repositories of tags, projects and project items, a user's
favourite styles and themes, the tags on any taggable row, and projects found by slug
with their ordered items."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, or_, select

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument, NotFound
from catalog.store.base import StoreBase
from catalog.store.marks import idempotent
from catalog.store.repo import Repo, RepoField, validated


class LibraryMixin(StoreBase):
    """What users keep and arrange: favourites, tags and projects."""

    tags = RepoField(t.TagRow, s.Tag, filters=("name",), updatable=("name",))
    projects = RepoField(
        t.ProjectRow, s.Project, filters=("slug", "is_featured", "is_published"),
        updatable=("name", "description", "is_published", "is_featured"),
        public_column="is_published",
    )
    project_items = RepoField(
        t.ProjectItemRow, s.ProjectItem,
        filters=("project_id", "image_id", "video_id"), updatable=("position",),
    )

    @idempotent
    def set_favorite(self, user_id: str, target_kind: s.RowKind, target_id: str,
                     favorite: bool = True) -> bool:
        """Mark (or unmark) a style or theme as ``user_id``'s favourite; doing it twice
        changes nothing. Returns whether it is a favourite now. Raises NotFound for an
        unknown target; ValueError for a kind that takes no favourites."""
        if not s.RowKind(target_kind).takes_favorites:
            raise ValueError(f"{target_kind} rows take no favourites")
        repo = self._tag_repos()[target_kind]
        fav = t.FavoriteRow
        with self.session() as session:
            repo._get_row(session, target_id)
            where = (fav.user_id == user_id, fav.target_kind == target_kind,
                     fav.target_id == target_id)
            exists = session.scalar(select(fav.id).where(*where))
            if favorite and exists is None:
                session.add(fav(id=t.new_id("fav"), user_id=user_id, target_kind=target_kind,
                                target_id=target_id))
            elif not favorite and exists is not None:
                session.execute(delete(fav).where(*where))
            return favorite

    @idempotent
    def set_tags(self, target_kind: s.RowKind, target_id: str, names: Sequence[str],
                 user_id: str | None) -> list[str]:
        """Make ``names`` exactly the tags on one row: tags of ``user_id`` that do not
        exist yet are created (seed 001's TagImage, one model for every entity), tags not
        named are taken off (the tags themselves stay). Returns the sorted names.

        Raises:
            InvalidArgument: a name breaks :class:`catalog.schemas.TagCreate`'s rule
                (field ``tags``).
            NotFound: no such row.
        """
        try:
            wanted = sorted({s.TagCreate(name=n.strip()).name for n in names})
        except ValidationError as exc:
            raise InvalidArgument(f"tags: {exc.errors()[0]['msg']}", field="tags") from exc
        repo = self._tag_repos()[target_kind]
        tag, tg = t.TagRow, t.TaggingRow
        with self.session() as session:
            repo._get_row(session, target_id)
            owner = tag.user_id.is_(None) if user_id is None else tag.user_id == user_id
            known = dict(session.execute(
                select(tag.name, tag.id).where(owner, tag.name.in_(wanted))).tuples().all())
            for name in wanted:
                if name not in known:
                    known[name] = t.new_id("tag")
                    session.add(tag(id=known[name], name=name, user_id=user_id))
            session.flush()
            wanted_ids = {known[n] for n in wanted}
            where = (tg.target_kind == target_kind, tg.target_id == target_id)
            have = set(session.scalars(select(tg.tag_id).where(*where)))
            session.execute(delete(tg).where(*where, tg.tag_id.notin_(wanted_ids)))
            for tag_id in wanted_ids - have:
                session.add(tg(id=t.new_id("tgg"), tag_id=tag_id, target_kind=target_kind,
                               target_id=target_id))
            return wanted

    def _tag_repos(self) -> dict[s.RowKind, Repo[Any]]:
        return {repo.tag_kind: repo for repo in self._repos.values() if repo.tag_kind}

    def create_project(self, request: s.ProjectCreate) -> s.Project:
        """Create a project; without ``slug`` the name's slug is used, made unique with
        ``-2``, ``-3``... Raises Conflict when a given ``slug`` is taken."""
        with self.session() as session:
            slug = request.slug
            if slug is None:
                base = re.sub(r"[^a-z0-9]+", "-", request.name.lower()).strip("-")[:190]
                base = base or "project"
                taken = set(session.scalars(select(t.ProjectRow.slug).where(
                    or_(t.ProjectRow.slug == base, t.ProjectRow.slug.like(f"{base}-%")))))
                slug, n = base, 1
                while slug in taken:
                    n += 1
                    slug = f"{base}-{n}"
            return validated(s.Project, self.projects._insert(session, request, slug=slug))

    @idempotent
    def find_project(self, ref: str) -> s.Project:
        """A project by id or by slug. Raises NotFound."""
        with self.session() as session:
            row = session.scalars(select(t.ProjectRow).where(
                or_(t.ProjectRow.id == ref, t.ProjectRow.slug == ref))).first()
            if row is None:
                raise NotFound(f"project {ref!r} not found", field="project")
            return s.Project.model_validate(row)

    def add_project_item(self, project_id: str, request: s.ProjectItemCreate) -> s.ProjectItem:
        """Place an image or a video in a project, at ``position`` (default: after the
        last). Raises NotFound, Conflict (already there)."""
        item = t.ProjectItemRow
        with self.session() as session:
            self.projects._get_row(session, project_id)
            position = request.position
            if position is None:
                last = session.scalar(select(func.max(item.position)).where(
                    item.project_id == project_id))
                position = 0 if last is None else last + 1
            row = item(id=t.new_id("pit"), project_id=project_id, image_id=request.image_id,
                       video_id=request.video_id, position=position)
            session.add(row)
            session.flush()
            return s.ProjectItem.model_validate(row)

    @idempotent
    def list_project_items(self, project_id: str) -> list[s.ProjectItem]:
        """A project's live items in order (position, then when added). Raises NotFound."""
        item = t.ProjectItemRow
        with self.session() as session:
            self.projects._get_row(session, project_id)
            rows = session.scalars(
                select(item).outerjoin(t.ImageRow, t.ImageRow.id == item.image_id)
                .outerjoin(t.VideoRow, t.VideoRow.id == item.video_id)
                .where(item.project_id == project_id, t.ImageRow.deleted_at.is_(None),
                       t.VideoRow.deleted_at.is_(None))
                .order_by(item.position, item.created_at, item.id))
            return [s.ProjectItem.model_validate(r) for r in rows]

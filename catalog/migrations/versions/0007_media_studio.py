"""media studio: styles and themes with versions, favourites, tags on every media entity,
projects, uploads' metadata, soft delete and retention, prediction retries

- ``prompt_helpers`` gains category, is_builtin, is_public; ``prompt_helper_versions``
  gains negative_text, placements (prompt type -> placement), style_presets (provider
  -> preset) and notes. Built-in styles are inserted (:data:`BUILTIN_STYLES`).
- ``theme_helpers`` gains category, flags, current_version and its current content;
  every existing theme gets version 1 in the new ``theme_helper_versions``.
- ``favorites`` (user, target) and ``taggings`` (tag, target) are new; ``tags`` stays.
- ``projects`` and ``project_items`` replace ``project_images`` (a project name per row):
  each distinct (owner, project name) becomes a project whose slug is the name's, and
  its rows become image items in the same order.
- ``images``, ``videos`` get metadata (title, caption, alt text, public, favourite),
  ``deleted_at``/``purged_at``; ``images`` gets num_outputs, guidance_scale,
  style_preset; ``videos`` gets source_image_id and thumbnail; ``image_edits`` gets
  ``deleted_at``/``purged_at``; ``source_images`` gets format (from its MIME type),
  thumbnail_path, title, description, purpose, is_public and the two times.
- ``predictions`` gains retry_count (0 for existing rows).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import catalog.tables
from catalog.migrate import sqlite_foreign_keys_off

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

#: (name, category, text, placement, stability style_preset): built-in styles, owned by
#: no user and public. The presets are Stability's documented ``style_preset`` values
#: (platform.stability.ai/docs/api-reference, Stable Image Core).
BUILTIN_STYLES = (
    ("Photographic", "photography", "photograph, natural light, 35mm, sharp focus",
     "append", "photographic"),
    ("Cinematic", "film", "cinematic still, dramatic lighting, shallow depth of field",
     "append", "cinematic"),
    ("Anime", "illustration", "anime style, clean line art, vibrant colours", "append",
     "anime"),
    ("Watercolor", "painting", "watercolor painting of {prompt}, soft washes, paper texture",
     "replace", None),
    ("Pixel art", "illustration", "pixel art, 16-bit, limited palette", "append",
     "pixel-art"),
    ("Isometric", "3d", "isometric view, clean 3D render", "prefix", "isometric"),
)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "project"


def _copy_projects(bind: sa.engine.Connection) -> None:
    """Each distinct (owner, project name) of ``project_images`` becomes a project, its
    rows image items in their order; slugs made unique with -2, -3..."""
    rows = bind.execute(sa.text(
        "SELECT id, project, image_id, position, user_id, created_at FROM project_images "
        "ORDER BY project, position, created_at")).all()
    projects: dict[tuple[str | None, str], str] = {}
    slugs: set[str] = set()
    now = datetime.now(UTC).replace(tzinfo=None)
    for row in rows:
        key = (row.user_id, row.project)
        if key not in projects:
            base = slug = _slug(row.project)
            n = 1
            while slug in slugs:
                n += 1
                slug = f"{base}-{n}"
            slugs.add(slug)
            projects[key] = _new_id("prj")
            bind.execute(sa.text(
                "INSERT INTO projects (id, name, slug, is_published, is_featured, user_id, "
                "created_at, updated_at) VALUES (:id, :name, :slug, :f, :f, :user_id, :now, "
                ":now)"), {"id": projects[key], "name": row.project, "slug": slug,
                           "f": False, "user_id": row.user_id, "now": now})
        bind.execute(sa.text(
            "INSERT INTO project_items (id, project_id, image_id, position, created_at) "
            "VALUES (:id, :pid, :image_id, :position, :created_at)"),
            {"id": _new_id("pit"), "pid": projects[key], "image_id": row.image_id,
             "position": row.position, "created_at": row.created_at})


def _seed(bind: sa.engine.Connection) -> None:
    """Version 1 of every existing theme; the built-in styles."""
    theme_rows = sa.table(
        "theme_helpers", sa.column("id"),
        sa.column("prompt_helper_ids", catalog.tables.JSONType),
        sa.column("created_at", catalog.tables.UTCDateTime()))
    versions = sa.table(
        "theme_helper_versions", sa.column("id"), sa.column("theme_id"), sa.column("version"),
        sa.column("prompt_helper_ids", catalog.tables.JSONType),
        sa.column("created_at", catalog.tables.UTCDateTime()))
    for theme in bind.execute(sa.select(theme_rows)).all():
        bind.execute(versions.insert().values(
            id=_new_id("thv"), theme_id=theme.id, version=1,
            prompt_helper_ids=theme.prompt_helper_ids or [], created_at=theme.created_at))
    helpers = sa.table(
        "prompt_helpers", sa.column("id"), sa.column("name"), sa.column("category"),
        sa.column("is_builtin"), sa.column("is_public"), sa.column("current_version"),
        sa.column("user_id"), sa.column("created_at", catalog.tables.UTCDateTime()),
        sa.column("updated_at", catalog.tables.UTCDateTime()))
    helper_versions = sa.table(
        "prompt_helper_versions", sa.column("id"), sa.column("helper_id"),
        sa.column("version"), sa.column("text"), sa.column("placement"),
        sa.column("placements", catalog.tables.JSONType),
        sa.column("style_presets", catalog.tables.JSONType),
        sa.column("created_at", catalog.tables.UTCDateTime()))
    now = datetime.now(UTC)
    for name, category, text, placement, preset in BUILTIN_STYLES:
        helper_id = _new_id("ph")
        bind.execute(helpers.insert().values(
            id=helper_id, name=name, category=category, is_builtin=True, is_public=True,
            current_version=1, user_id=None, created_at=now, updated_at=now))
        bind.execute(helper_versions.insert().values(
            id=_new_id("phv"), helper_id=helper_id, version=1, text=text,
            placement=placement, placements={},
            style_presets={"stability": preset} if preset else {}, created_at=now))


def upgrade() -> None:
    # on SQLite, batch mode may copy tables that others reference
    with sqlite_foreign_keys_off():
        _upgrade()


def _upgrade() -> None:
    op.create_table('favorites',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_favorites')),
    sa.UniqueConstraint('user_id', 'target_kind', 'target_id', name=op.f('uq_favorites_user_id_target_kind_target_id'))
    )
    with op.batch_alter_table('favorites', schema=None) as batch_op:
        batch_op.create_index('ix_favorites_target', ['target_kind', 'target_id'], unique=False)

    op.create_table('projects',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('is_published', sa.Boolean(), nullable=False),
    sa.Column('is_featured', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.Column('updated_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('slug', name=op.f('uq_projects_slug'))
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_projects_user_id'), ['user_id'], unique=False)

    op.create_table('taggings',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('tag_id', sa.String(length=64), nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_taggings_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_taggings')),
    sa.UniqueConstraint('tag_id', 'target_kind', 'target_id', name=op.f('uq_taggings_tag_id_target_kind_target_id'))
    )
    with op.batch_alter_table('taggings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_taggings_tag_id'), ['tag_id'], unique=False)
        batch_op.create_index('ix_taggings_target', ['target_kind', 'target_id'], unique=False)

    op.create_table('theme_helper_versions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('theme_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('negative_text', sa.Text(), nullable=True),
    sa.Column('prompt_helper_ids', catalog.tables.JSONType, nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['theme_id'], ['theme_helpers.id'], name=op.f('fk_theme_helper_versions_theme_id_theme_helpers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_theme_helper_versions')),
    sa.UniqueConstraint('theme_id', 'version', name=op.f('uq_theme_helper_versions_theme_id_version'))
    )
    with op.batch_alter_table('theme_helper_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_theme_helper_versions_theme_id'), ['theme_id'], unique=False)

    op.create_table('project_items',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('image_id', sa.String(length=64), nullable=True),
    sa.Column('video_id', sa.String(length=64), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_project_items_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_items_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], name=op.f('fk_project_items_video_id_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_items')),
    sa.UniqueConstraint('project_id', 'image_id', name=op.f('uq_project_items_project_id_image_id')),
    sa.UniqueConstraint('project_id', 'video_id', name=op.f('uq_project_items_project_id_video_id'))
    )
    with op.batch_alter_table('project_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_items_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_items_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_items_video_id'), ['video_id'], unique=False)

    with op.batch_alter_table('image_edits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('purged_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_image_edits_deleted_at'), ['deleted_at'], unique=False)

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('num_outputs', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('guidance_scale', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('style_preset', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('purged_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('title', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('caption', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('alt_text', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('is_favorite', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_images_deleted_at'), ['deleted_at'], unique=False)

    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_count', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('prompt_helper_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('negative_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('placements', catalog.tables.JSONType, nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('style_presets', catalog.tables.JSONType, nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=True))

    with op.batch_alter_table('prompt_helpers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('is_builtin', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_prompt_helpers_category'), ['category'], unique=False)

    with op.batch_alter_table('source_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thumbnail_path', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('format', sa.String(length=16), nullable=False, server_default='png'))
        batch_op.add_column(sa.Column('title', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), nullable=False, server_default='reference'))
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('deleted_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('purged_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_source_images_deleted_at'), ['deleted_at'], unique=False)

    with op.batch_alter_table('theme_helpers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('is_builtin', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('is_featured', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('is_active', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('current_version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('negative_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_theme_helpers_category'), ['category'], unique=False)

    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_image_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('thumbnail', catalog.tables.JSONType, nullable=True))
        batch_op.add_column(sa.Column('deleted_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('purged_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('title', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('caption', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('alt_text', sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column('is_public', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('is_favorite', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_videos_deleted_at'), ['deleted_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_videos_source_image_id_source_images'), 'source_images', ['source_image_id'], ['id'], ondelete='SET NULL')

    bind = op.get_bind()
    bind.execute(sa.text(
        "UPDATE source_images SET format = CASE mime_type WHEN 'image/jpeg' THEN 'jpeg' "
        "WHEN 'image/webp' THEN 'webp' WHEN 'image/gif' THEN 'gif' ELSE 'png' END"))
    _copy_projects(bind)
    _seed(bind)
    with op.batch_alter_table('project_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_images_created_at'))
        batch_op.drop_index(batch_op.f('ix_project_images_project'))
        batch_op.drop_index(batch_op.f('ix_project_images_user_id'))

    op.drop_table('project_images')


def downgrade() -> None:
    with sqlite_foreign_keys_off():
        _downgrade()


def _downgrade() -> None:
    bind = op.get_bind()
    builtin = "SELECT id FROM prompt_helpers WHERE is_builtin"
    versions = f"SELECT id FROM prompt_helper_versions WHERE helper_id IN ({builtin})"
    # foreign keys are off here: do what their ON DELETE rules would
    bind.execute(sa.text(f"UPDATE images SET prompt_helper_version_id = NULL "
                         f"WHERE prompt_helper_version_id IN ({versions})"))
    bind.execute(sa.text(f"UPDATE prompt_helpers SET forked_from_id = NULL "
                         f"WHERE forked_from_id IN ({builtin})"))
    bind.execute(sa.text(f"DELETE FROM prompt_helper_versions WHERE id IN ({versions})"))
    bind.execute(sa.text(f"DELETE FROM prompt_helpers WHERE id IN ({builtin})"))
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_videos_source_image_id_source_images'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_videos_deleted_at'))
        batch_op.drop_column('is_favorite')
        batch_op.drop_column('is_public')
        batch_op.drop_column('alt_text')
        batch_op.drop_column('caption')
        batch_op.drop_column('title')
        batch_op.drop_column('purged_at')
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('thumbnail')
        batch_op.drop_column('source_image_id')

    with op.batch_alter_table('theme_helpers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_theme_helpers_category'))
        batch_op.drop_column('notes')
        batch_op.drop_column('negative_text')
        batch_op.drop_column('text')
        batch_op.drop_column('current_version')
        batch_op.drop_column('is_active')
        batch_op.drop_column('is_featured')
        batch_op.drop_column('is_public')
        batch_op.drop_column('is_builtin')
        batch_op.drop_column('category')

    with op.batch_alter_table('source_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_images_deleted_at'))
        batch_op.drop_column('purged_at')
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('is_public')
        batch_op.drop_column('purpose')
        batch_op.drop_column('description')
        batch_op.drop_column('title')
        batch_op.drop_column('format')
        batch_op.drop_column('thumbnail_path')

    with op.batch_alter_table('prompt_helpers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prompt_helpers_category'))
        batch_op.drop_column('is_public')
        batch_op.drop_column('is_builtin')
        batch_op.drop_column('category')

    with op.batch_alter_table('prompt_helper_versions', schema=None) as batch_op:
        batch_op.drop_column('notes')
        batch_op.drop_column('style_presets')
        batch_op.drop_column('placements')
        batch_op.drop_column('negative_text')

    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_column('retry_count')

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_deleted_at'))
        batch_op.drop_column('is_favorite')
        batch_op.drop_column('is_public')
        batch_op.drop_column('alt_text')
        batch_op.drop_column('caption')
        batch_op.drop_column('title')
        batch_op.drop_column('purged_at')
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('style_preset')
        batch_op.drop_column('guidance_scale')
        batch_op.drop_column('num_outputs')

    with op.batch_alter_table('image_edits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_edits_deleted_at'))
        batch_op.drop_column('purged_at')
        batch_op.drop_column('deleted_at')

    op.create_table('project_images',
    sa.Column('id', sa.VARCHAR(length=64), nullable=False),
    sa.Column('project', sa.VARCHAR(length=200), nullable=False),
    sa.Column('image_id', sa.VARCHAR(length=64), nullable=False),
    sa.Column('position', sa.INTEGER(), nullable=False),
    sa.Column('user_id', sa.VARCHAR(length=64), nullable=True),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.Column('updated_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_project_images_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_images')),
    sa.UniqueConstraint('project', 'image_id', name=op.f('uq_project_images_project_image_id'))
    )
    with op.batch_alter_table('project_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_images_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_images_project'), ['project'], unique=False)
        batch_op.create_index(batch_op.f('ix_project_images_created_at'), ['created_at'], unique=False)

    op.get_bind().execute(sa.text(
        "INSERT INTO project_images (id, project, image_id, position, user_id, created_at, "
        "updated_at) SELECT i.id, p.name, i.image_id, i.position, p.user_id, i.created_at, "
        "i.created_at FROM project_items i JOIN projects p ON p.id = i.project_id "
        "WHERE i.image_id IS NOT NULL"))
    with op.batch_alter_table('project_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_items_video_id'))
        batch_op.drop_index(batch_op.f('ix_project_items_project_id'))
        batch_op.drop_index(batch_op.f('ix_project_items_image_id'))

    op.drop_table('project_items')
    with op.batch_alter_table('theme_helper_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_theme_helper_versions_theme_id'))

    op.drop_table('theme_helper_versions')
    with op.batch_alter_table('taggings', schema=None) as batch_op:
        batch_op.drop_index('ix_taggings_target')
        batch_op.drop_index(batch_op.f('ix_taggings_tag_id'))

    op.drop_table('taggings')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_user_id'))
        batch_op.drop_index(batch_op.f('ix_projects_created_at'))

    op.drop_table('projects')
    with op.batch_alter_table('favorites', schema=None) as batch_op:
        batch_op.drop_index('ix_favorites_target')

    op.drop_table('favorites')

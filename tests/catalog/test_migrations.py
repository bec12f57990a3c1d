"""Alembic migrations: empty -> head -> base on both backends, and the startup check."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from catalog import migrate
from catalog import schemas as s
from catalog.errors import SchemaOutOfDate
from catalog.store import CatalogStore, make_engine
from catalog.tables import Base


def test_upgrade_to_head_then_downgrade(db_url):
    engine = make_engine(db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_schema_matches_models_after_upgrade(db_url):
    """Autogenerate finds nothing to do: the migrations and tables.py agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_open_without_migrate_refuses_old_schema(db_url):
    with pytest.raises(SchemaOutOfDate, match="alembic upgrade head"):
        CatalogStore.open(db_url, migrate=False)
    CatalogStore.open(db_url).close()
    CatalogStore.open(db_url, migrate=False).close()


def _insert_0001_job(engine) -> None:
    """A base model, a dataset, a job with a metric and a checkpoint, and an adapter model
    trained on the dataset, written with revision 0001's columns only."""
    from datetime import datetime

    from sqlalchemy import text

    now = datetime(2026, 1, 1, 12, 0)
    stamps = {"now": now}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO models (id, name, version, kind, path, config, metrics, published, "
            "created_at, updated_at) VALUES ('mdl_base', 'smol', 1, 'base', '/m', '{}', '{}', "
            "false, :now, :now)"), stamps)
        conn.execute(text(
            "INSERT INTO datasets (id, name, version, format, path, num_rows, size_bytes, "
            "created_at, updated_at) VALUES ('ds_1', 'chat', 1, 'openai', '/d.jsonl', 3, 10, "
            ":now, :now)"), stamps)
        conn.execute(text(
            "INSERT INTO models (id, name, version, kind, path, base_model_id, dataset_id, "
            "config, metrics, published, created_at, updated_at) VALUES ('mdl_lora', 'lora', "
            "1, 'adapter', '/a', 'mdl_base', 'ds_1', '{}', '{}', false, :now, :now)"), stamps)
        conn.execute(text(
            "INSERT INTO training_jobs (id, name, status, base_model_id, dataset_id, "
            "eval_fraction, hyperparameters, lora, quantization, scaling, country_iso_code, "
            "created_at, updated_at) VALUES ('job_old', 'old', 'completed', 'mdl_base', "
            "'ds_1', 0.1, '{\"num_epochs\": 2, \"optimizer\": \"adamw\"}', '{\"alpha\": 8}', "
            "'{}', '{}', 'USA', :now, :now)"), stamps)
        conn.execute(text(
            "INSERT INTO job_metrics (job_id, step, train_loss, created_at) "
            "VALUES ('job_old', 5, 1.5, :now)"), stamps)
        conn.execute(text(
            "INSERT INTO job_checkpoints (job_id, step, path, eval_loss, created_at) "
            "VALUES ('job_old', 5, '/c/5', 1.25, :now)"), stamps)


def test_upgrade_from_0001_keeps_rows_and_fills_defaults(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0001")
    _insert_0001_job(engine)
    engine.dispose()

    store = CatalogStore.open(db_url)  # upgrades to head on its own engine
    try:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        if store.dialect() == "sqlite":  # the connection the migration used enforces them again
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        job = store.training_jobs.get("job_old")
        assert (job.method, job.report_to, job.status) == ("sft", [], "completed")
        assert (job.progress, job.current_step, job.total_steps) == (0.0, 0, 0)
        assert (job.current_epoch, job.total_epochs) == (0.0, 0.0)
        # JSON written under the old field names reads back under the new ones
        assert job.hyperparameters.num_train_epochs == 2
        assert job.hyperparameters.optim == "adamw_torch"
        assert job.lora.lora_alpha == 8
        # the copy of datasets (SQLite) neither cascaded nor nulled the rows that reference it
        assert store.models.get("mdl_lora").dataset_id == "ds_1"
        [point] = store.list_metrics("job_old")
        assert (point.step, point.train_loss, point.extra) == (5, 1.5, None)
        [ckpt] = store.list_checkpoints("job_old")
        assert (ckpt.step, ckpt.eval_loss, ckpt.train_loss, ckpt.size_bytes) == (
            5, 1.25, None, None)
        # the widened format column holds the longest format name
        long = store.datasets.create(s.DatasetCreate(
            name="pairs", format="openai_preference", path="/p.jsonl", num_rows=1,
            size_bytes=1))
        assert store.datasets.get(long.id).format == "openai_preference"
    finally:
        store.close()


def test_downgrade_to_0001_keeps_rows(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0001")
    _insert_0001_job(engine)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "0001")
    assert migrate.current_revision(engine) == "0001"
    columns = {c["name"] for c in inspect(engine).get_columns("training_jobs")}
    assert "method" not in columns and "progress" not in columns
    with engine.connect() as conn:
        from sqlalchemy import text

        counts = [conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                  for table in ("training_jobs", "job_metrics", "job_checkpoints")]
        lineage = conn.execute(text(
            "SELECT dataset_id FROM models WHERE id = 'mdl_lora'")).scalar()
    assert counts == [1, 1, 1] and lineage == "ds_1"
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_downgrade_refuses_formats_0001_cannot_hold(db_url):
    store = CatalogStore.open(db_url)
    store.datasets.create(s.DatasetCreate(
        name="pairs", format="preference", path="/p.jsonl", num_rows=1, size_bytes=1))
    store.datasets.create(s.DatasetCreate(
        name="oa-pairs", format="openai_preference", path="/p.jsonl", num_rows=1,
        size_bytes=1))
    with pytest.raises(RuntimeError, match="1 datasets have a format longer than 16"):
        migrate.downgrade(store.engine, "0001")
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    store.close()

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
    """Autogenerate finds nothing to do: the migrations and catalog/tables/ agree."""
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
    # SQLite's DDL is not transactional in Alembic (each revision commits on its own), so
    # step down to 0002 first: the refused step then leaves the database at 0002 on both
    migrate.downgrade(store.engine, "0002")
    with pytest.raises(RuntimeError, match="1 datasets have a format longer than 16"):
        migrate.downgrade(store.engine, "0001")
    assert migrate.current_revision(store.engine) == "0002"
    store.close()


def _insert_0002_usage(engine) -> None:
    """Usage records written with revision 0002's columns (no model id, no key): two
    users, two hours, one record with a cost and an adapter, one media record."""
    from datetime import datetime

    from sqlalchemy import text

    rows = [
        ("u1", "llm", "smol", None, 10, 5, None, "alice", datetime(2026, 1, 1, 12, 5)),
        ("u2", "llm", "smol", None, 7, 3, 0.5, "alice", datetime(2026, 1, 1, 12, 59, 59)),
        ("u3", "llm", "smol", "lora", 1, 2, None, "bob", datetime(2026, 1, 1, 12, 30)),
        ("u4", "llm", "smol", None, 4, 4, 0.25, None, datetime(2026, 1, 1, 13, 0)),
        ("u5", "media", "flux", None, 0, 0, 0.03, "alice", datetime(2026, 1, 2, 9, 0, 0, 1)),
    ]
    with engine.begin() as conn:
        for rid, kind, model, adapter, p, c, cost, user, when in rows:
            conn.execute(text(
                "INSERT INTO usage_records (id, kind, model, adapter, prompt_tokens, "
                "completion_tokens, total_tokens, latency_ms, energy_kwh, emissions_kg, "
                "cost_usd, details, user_id, created_at) VALUES (:id, :kind, :model, "
                ":adapter, :p, :c, :t, 1.0, 0.001, 0.0004, :cost, '{}', :user, :when)"),
                {"id": rid, "kind": kind, "model": model, "adapter": adapter, "p": p, "c": c,
                 "t": p + c, "cost": cost, "user": user, "when": when})


def test_upgrade_from_0002_backfills_usage_rollups(db_url):
    from datetime import UTC, datetime

    engine = make_engine(db_url)
    migrate.upgrade(engine, "0002")
    _insert_0002_usage(engine)
    engine.dispose()

    store = CatalogStore.open(db_url)  # upgrades to head
    try:
        old = store.usage.get("u1")
        assert (old.model_id, old.api_key_id, old.user_id) == (None, None, "alice")
        with store.session() as session:
            from sqlalchemy import select

            from catalog.tables import UsageRollupRow
            rollups = {
                (r.bucket, r.user_id, r.adapter, r.kind): (r.requests, r.prompt_tokens,
                                                           r.completion_tokens, r.costed_requests)
                for r in session.scalars(select(UsageRollupRow))
            }
        noon, one = datetime(2026, 1, 1, 12, tzinfo=UTC), datetime(2026, 1, 1, 13, tzinfo=UTC)
        assert rollups == {
            (noon, "alice", "", "llm"): (2, 17, 8, 1),
            (noon, "bob", "lora", "llm"): (1, 1, 2, 0),
            (one, "", "", "llm"): (1, 4, 4, 1),
            (datetime(2026, 1, 2, 9, tzinfo=UTC), "alice", "", "media"): (1, 0, 0, 1),
        }
        # summaries read the backfilled rollups, and new records add to them
        store.record_usage([s.UsageCreate(id="u6", model="smol", prompt_tokens=1,
                                          user_id="alice", created_at=noon)])
        by_user = {r.key: r for r in store.usage_summary("user").rows}
        assert by_user["alice"].requests == 4 and by_user["alice"].prompt_tokens == 18
        assert by_user["alice"].cost_usd == pytest.approx(0.53)
        assert by_user[None].total_tokens == 8 and by_user["bob"].cost_usd is None
        by_adapter = {r.key: r.requests for r in store.usage_summary("adapter").rows}
        assert by_adapter == {"lora": 1, None: 5}  # no model id before 0003: the name
    finally:
        store.close()


def test_downgrade_from_0003_keeps_usage_rows(db_url):
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0002")
    _insert_0002_usage(engine)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "0002")
    assert "usage_rollups" not in inspect(engine).get_table_names()
    columns = {c["name"] for c in inspect(engine).get_columns("usage_records")}
    assert "model_id" not in columns and "api_key_id" not in columns
    with engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM usage_records")).scalar() == 5
    migrate.upgrade(engine)  # and back up: the rollups are filled again
    with engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT sum(requests) FROM usage_rollups")).scalar() == 5
    engine.dispose()


def test_keys_before_0008_read_back_as_full_keys_and_job_tokens_go_on_downgrade(db_url):
    from datetime import datetime

    from sqlalchemy import text

    engine = make_engine(db_url)
    migrate.upgrade(engine, "0007")
    key_hash = "0" * 64
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, role, revoked, "
            "created_at, updated_at) VALUES ('key_old', 'ada', 'laptop', 'gk_abc', :h, "
            "'user', false, :now, :now)"), {"h": key_hash, "now": datetime(2026, 1, 1)})
    engine.dispose()

    store = CatalogStore.open(db_url)  # upgrades to head
    try:
        old = store.api_keys.get("key_old")
        assert (old.scope, old.job_id, old.expires_at, old.revoked) == (
            "full", None, None, False)
        token, _secret = store.create_job_token("ada")
        migrate.downgrade(store.engine, "0007")
        with store.engine.connect() as conn:
            ids = {r[0] for r in conn.execute(text("SELECT id FROM api_keys"))}
        assert ids == {"key_old"} and token.id not in ids
    finally:
        store.close()

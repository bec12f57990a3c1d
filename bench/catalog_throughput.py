"""Catalog throughput: usage records/s acknowledged through UsageBuffer vs one actor call
per record, and usage and carbon summaries over 1,000,000 usage rows.

Everything runs on this machine: a local Ray (``ray.init(num_cpus=...)``), a private
catalog actor (:func:`catalog.actor.get_catalog` under its own name) on PostgreSQL in a
fresh schema of the test database (dropped at the end), and PostgreSQL itself.

(i) Throughput (targets: >= 5,000 records/s acknowledged from 8 concurrent writers).
``--writers`` writer actors each build ``--records-per-writer`` usage records and

- **buffered**: ``add`` them to a :class:`catalog.usage_buffer.UsageBuffer` over
  :class:`catalog.actor.AsyncCatalog` (defaults: batches of 512, 50 ms, 2 in flight;
  ``max_buffered`` above the records fed and ``spool_after_s`` an hour, so nothing is
  spooled although every record is queued at once, and the figure is the catalog
  path's) as fast as they can, yielding to the loop once per batch, and
  return when ``flush()`` has seen every record acknowledged;
- **per record** (the peer, what replicas did before: one actor call per request):
  ``await cat.record_usage([record])``, 8 calls at a time per writer
  (``--peer-records-per-writer`` records each, fewer since it is slower).

A figure is all writers' records over the wall time from starting the writers (already
created and warm) to the last one's return, measured by this driver. The peers
alternate for ``--rounds`` rounds; medians, spread and the ratio are printed.

(ii) Summaries (target: <= 200 ms over 1,000,000 usage rows). The usage table is
emptied and ``--rows`` records are written straight through
:meth:`catalog.store.CatalogStore.record_usage` in chunks (which maintains the hourly
rollups), spread over ``--days`` days with a daily cycle, 50 users and 100 API keys
with Zipf-like traffic (s = 1.1), each key mostly on one of 6 models (3 bases, 3 LoRA
adapters); then ``ANALYZE``. Each ``CatalogStore.usage_summary`` and
``CatalogStore.carbon_summary`` group-by is timed (median of 5 after one warm-up call)
against the peer: one plain ``GROUP BY`` over the raw usage rows with the same sums.

    python -m bench.catalog_throughput [--rows 1000000 --records-per-writer 10000
                                        --rounds 3 --skip-summary]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

#: The test database (trust auth); the bench makes and drops its own schema in it.
PG_URL = os.environ.get("GARDEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TARGET_RECORDS_PER_S = 5000
TARGET_SUMMARY_MS = 200

USERS = [f"usr_{i:03d}" for i in range(50)]
#: API key -> its user (each user has 1-3 keys).
KEYS = {f"key_{i:03d}": USERS[(i * 7) % len(USERS)] for i in range(100)}
#: (model, model_id, adapter): three base models and three adapters on them.
MODELS = [
    ("SmolLM2-135M-Instruct", "mdl_smol", None),
    ("Qwen2.5-0.5B-Instruct", "mdl_qwen", None),
    ("Llama-3.2-1B-Instruct", "mdl_llama", None),
    ("SmolLM2-135M-Instruct", "mdl_smol_support", "support-bot"),
    ("Qwen2.5-0.5B-Instruct", "mdl_qwen_sql", "sql-helper"),
    ("Llama-3.2-1B-Instruct", "mdl_llama_legal", "legal-summarizer"),
]


class Traffic:
    """Realistic usage records: Zipf-like key popularity, a main model per key (80 %),
    token counts from a log-normal, energy and emissions proportional to tokens."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.keys = list(KEYS)
        self.cum_weights = list(itertools.accumulate(
            1 / (rank + 1) ** 1.1 for rank in range(len(self.keys))))
        self.main_model = {k: self.rng.randrange(len(MODELS)) for k in self.keys}

    def record(self, created_at: datetime | None = None) -> Any:
        from catalog import schemas as s

        rng = self.rng
        key = rng.choices(self.keys, cum_weights=self.cum_weights)[0]
        model, model_id, adapter = MODELS[self.main_model[key] if rng.random() < 0.8
                                          else rng.randrange(len(MODELS))]
        prompt = int(rng.lognormvariate(5.0, 1.0))
        completion = int(rng.lognormvariate(4.5, 0.8))
        energy = (prompt + 4 * completion) * 2e-8
        return s.UsageCreate(
            model=model, model_id=model_id, adapter=adapter, user_id=KEYS[key],
            api_key_id=key, prompt_tokens=prompt, completion_tokens=completion,
            latency_ms=rng.uniform(50, 3000), ttft_ms=rng.uniform(10, 300),
            energy_kwh=energy, emissions_kg=energy * 0.4,
            cost_usd=(prompt + completion) * 1e-7 if rng.random() < 0.5 else None,
            details={"route": "/v1/chat/completions", "stream": rng.random() < 0.3},
            created_at=created_at,
        )


# --------------------------------------------------------------------------- (i) writers


def _writer_class():
    import ray

    @ray.remote(num_cpus=0)
    class Writer:
        """One replica-like process writing usage records to the catalog actor."""

        def __init__(self, handle, seed: int, spool: str):
            from catalog.actor import AsyncCatalog

            self.cat = AsyncCatalog(handle)
            self.traffic = Traffic(seed)
            self.spool = spool

        def ready(self) -> bool:
            return True

        async def buffered(self, n: int) -> dict[str, int]:
            """Feed ``n`` records to a UsageBuffer; return once all are acknowledged."""
            from catalog.usage_buffer import UsageBuffer

            buf = UsageBuffer(self.cat, max_buffered=n + 1, spool_after_s=3600,
                              spool=self.spool)
            buf.start()
            for i in range(n):
                buf.add(self.traffic.record())
                if i % buf.batch_size == buf.batch_size - 1:
                    await asyncio.sleep(0)
            await buf.flush(timeout_s=600)
            await buf.close()
            return buf.stats()

        async def per_record(self, n: int, concurrency: int) -> int:
            """``n`` records, one ``record_usage`` call each, ``concurrency`` at a time."""
            records = [self.traffic.record() for _ in range(n)]
            for r in records:  # what a replica sets (UsageBuffer.add does the same)
                r.id, r.created_at = f"use_{uuid.uuid4().hex}", datetime.now(UTC)

            async def lane(share: list[Any]) -> None:
                for r in share:
                    await self.cat.record_usage([r])

            await asyncio.gather(*(lane(records[i::concurrency]) for i in range(concurrency)))
            return n

    return Writer


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return (f"median {fmt.format(statistics.median(values))} (min {fmt.format(min(values))}, "
            f"max {fmt.format(max(values))}, n={len(values)})")


def throughput(handle, args) -> None:
    import ray

    writer_cls = _writer_class()
    with tempfile.TemporaryDirectory(prefix="garden-bench-spool-") as spool:
        writers = [writer_cls.remote(handle, seed, spool) for seed in range(args.writers)]
        ray.get([w.ready.remote() for w in writers])
        buffered, single, stats = [], [], []
        for i in range(args.rounds):
            t0 = time.perf_counter()
            stats += ray.get([w.buffered.remote(args.records_per_writer) for w in writers])
            buffered.append(args.writers * args.records_per_writer / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            ray.get([w.per_record.remote(args.peer_records_per_writer, args.concurrency)
                     for w in writers])
            single.append(args.writers * args.peer_records_per_writer
                          / (time.perf_counter() - t0))
            print(f"round {i + 1}: UsageBuffer {buffered[-1]:9,.0f} records/s   "
                  f"one call per record {single[-1]:7,.0f} records/s   "
                  f"ratio {buffered[-1] / single[-1]:5.1f}", flush=True)
        for w in writers:
            ray.kill(w)
    total = {k: sum(st[k] for st in stats) for k in ("acknowledged", "calls", "failures",
                                                     "spooled", "rejected")}
    print(f"\n(i) usage records acknowledged per second, {args.writers} writers into "
          f"PostgreSQL, {os.cpu_count()} cores")
    print(f"  UsageBuffer ({args.records_per_writer:,} records per writer): "
          f"{spread(buffered)} records/s  (target >= {TARGET_RECORDS_PER_S:,})")
    print(f"  one actor call per record, {args.concurrency} at a time per writer "
          f"({args.peer_records_per_writer:,} per writer; peer): {spread(single)} records/s")
    ratios = [b / p for b, p in zip(buffered, single, strict=True)]
    print(f"  ratio of medians: {statistics.median(buffered) / statistics.median(single):.1f}"
          f"   per round: {spread(ratios, '{:.1f}')}")
    print(f"  buffers: {total['acknowledged']:,} acknowledged in {total['calls']:,} calls "
          f"(mean batch {total['acknowledged'] / max(total['calls'], 1):.0f}); "
          f"failures {total['failures']}, spooled {total['spooled']}, "
          f"rejected {total['rejected']}")


# --------------------------------------------------------------------------- (ii) summaries


def fill(store, rows: int, days: int) -> float:
    """Empty the usage tables and write ``rows`` records spread over the last ``days``
    days (whole hours before now) through ``store.record_usage``; returns rows/s."""
    from sqlalchemy import text

    from catalog import tables as t

    with store.session() as session:
        for table in (t.UsageRow.__tablename__, t.UsageRollupRow.__tablename__):
            session.execute(text(f"DELETE FROM {table}"))
    traffic = Traffic(seed=1234)
    rng = random.Random(99)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    span_h = days * 24
    # a daily cycle: traffic at hour h of the day ~ 1 + 0.8 sin(...), peak mid-afternoon UTC
    hour_weights = [1 + 0.8 * math.sin((h % 24 - 9) / 24 * 2 * math.pi) for h in range(span_h)]
    chunk = 5000
    t0 = time.perf_counter()
    for done in range(0, rows, chunk):
        hours = rng.choices(range(span_h), hour_weights, k=min(chunk, rows - done))
        batch = [traffic.record(start + timedelta(hours=h, seconds=rng.uniform(0, 3599)))
                 for h in hours]
        store.record_usage(batch)
        if done // chunk % 40 == 39:
            print(f"  {done + chunk:,} rows written", flush=True)
    rate = rows / (time.perf_counter() - t0)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (t.UsageRow.__tablename__, t.UsageRollupRow.__tablename__):
            conn.execute(text(f"ANALYZE {table}"))
    return rate


def peer_usage(store, group_by: str):
    """The plain GROUP BY over the raw usage rows, with usage_summary's sums."""
    from sqlalchemy import case, func, select

    from catalog import tables as t

    u = t.UsageRow
    key = {"user": u.user_id, "key": u.api_key_id, "model": u.model,
           "adapter": case((u.adapter.is_not(None), func.coalesce(u.model_id, u.adapter)),
                           else_=None),
           "day": func.to_char(u.created_at, "YYYY-MM-DD"),
           "month": func.to_char(u.created_at, "YYYY-MM")}[group_by]
    stmt = select(key, func.count(), func.sum(u.prompt_tokens), func.sum(u.completion_tokens),
                  func.sum(u.total_tokens), func.sum(u.cost_usd), func.sum(u.energy_kwh),
                  func.sum(u.emissions_kg)).group_by(key)
    with store.session() as session:
        return session.execute(stmt).all()


def peer_carbon(store, group_by: str):
    """The plain GROUP BY over the raw usage rows that carbon_summary's inference part
    needs (energy, emissions, requests per model, per period, or in all)."""
    from sqlalchemy import func, select

    from catalog import tables as t

    u = t.UsageRow
    keys: list[Any] = [u.model_id, u.model]
    if group_by in ("day", "month"):
        keys.append(func.to_char(u.created_at, "YYYY-MM-DD" if group_by == "day" else "YYYY-MM"))
    stmt = select(*keys, func.count(), func.sum(u.energy_kwh), func.sum(u.emissions_kg))
    with store.session() as session:
        return session.execute(stmt.group_by(*keys)).all()


def timed_ms(fn, repeats: int = 5) -> float:
    fn()  # warm-up: plans, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def summaries(store, args) -> None:
    from sqlalchemy import func, select

    from catalog import schemas as s
    from catalog import tables as t

    print(f"\nfilling usage_records with {args.rows:,} rows over {args.days} days ...",
          flush=True)
    rate = fill(store, args.rows, args.days)
    with store.session() as session:
        rows = session.scalar(select(func.count()).select_from(t.UsageRow))
        rollups = session.scalar(select(func.count()).select_from(t.UsageRollupRow))
    print(f"\n(ii) summaries over {rows:,} usage rows ({rollups:,} hourly rollup rows; "
          f"written at {rate:,.0f} rows/s straight through CatalogStore.record_usage); "
          f"median of 5, ms; target <= {TARGET_SUMMARY_MS} ms")
    print(f"  {'call':<40}{'summary':>10}{'raw GROUP BY (peer)':>22}{'ratio':>8}  target")
    cases = [(f"usage_summary({g!r})", lambda g=g: store.usage_summary(g),
              lambda g=g: peer_usage(store, g)) for g in get_args(s.UsageGroupBy)]
    cases += [(f"carbon_summary({g!r})", lambda g=g: store.carbon_summary(g),
               lambda g=g: peer_carbon(store, g)) for g in get_args(s.CarbonGroupBy)]
    for name, ours, peer in cases:
        a, b = timed_ms(ours), timed_ms(peer)
        verdict = "ok" if a <= TARGET_SUMMARY_MS else "OVER"
        print(f"  {name:<40}{a:>10.1f}{b:>22.1f}{b / a:>8.1f}  {verdict}", flush=True)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    import ray
    from sqlalchemy import create_engine, text

    from catalog.actor import get_catalog
    from catalog.store import CatalogStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--records-per-writer", type=int, default=10_000)
    parser.add_argument("--peer-records-per-writer", type=int, default=500)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="calls in flight per writer, one-call-per-record peer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2,
                        help="ray.init(num_cpus=...)")
    parser.add_argument("--skip-summary", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    store = CatalogStore.open(url)  # migrated here, before the actor opens it
    try:
        if not args.skip_throughput:
            ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
                     log_to_driver=False)
            try:
                handle = get_catalog(url, name=f"catalog-bench-{schema}")
                throughput(handle, args)
                ray.kill(handle, no_restart=True)
            finally:
                ray.shutdown()
        if not args.skip_summary:
            summaries(store, args)
    finally:
        store.close()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()

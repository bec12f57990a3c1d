"""Usage accounting in the store, on SQLite and PostgreSQL: idempotent batches and their
hourly rollups, usage summaries against a direct computation over the records, the carbon
summary in seed 002's shape, and API keys' limits and tokens used."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from catalog import schemas as s
from catalog.errors import InvalidArgument
from catalog.tables import UsageRollupRow
from tests.factories import base_model, dataset, job

START = datetime(2026, 1, 30, 22, 0, tzinfo=UTC)  # spans a day and a month boundary


def _records(n: int, seed: int = 7) -> list[s.UsageCreate]:
    """``n`` varied records over about three days from START: users, keys, models,
    adapters with and without a model id, media calls, costs known or not."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        adapter = rng.choice([None, None, "fin", "law"])
        kind = rng.choice(["llm", "llm", "llm", "media"])
        model_id = {"fin": "mdl_fin", "law": None}.get(adapter or "", rng.choice(
            [None, "mdl_base"]))
        out.append(s.UsageCreate(
            id=f"r{seed}-{i}", kind=kind, model="flux" if kind == "media" else "smol",
            adapter=None if kind == "media" else adapter,
            model_id=None if kind == "media" else model_id,
            user_id=rng.choice([None, "alice", "bob", "carol"]),
            api_key_id=rng.choice([None, "key_a", "key_b"]),
            prompt_tokens=rng.randrange(0, 200), completion_tokens=rng.randrange(0, 100),
            cost_usd=rng.choice([None, round(rng.random(), 4)]),
            energy_kwh=rng.random() * 1e-4, emissions_kg=rng.random() * 4e-5,
            created_at=START + timedelta(seconds=rng.randrange(0, 3 * 24 * 3600)),
        ))
    return out


def _key(r: s.UsageCreate, group_by: str) -> str | None:
    when = r.created_at.astimezone(UTC)
    return {
        "user": r.user_id, "key": r.api_key_id, "model": r.model,
        "adapter": (r.model_id or r.adapter) if r.adapter else None,
        "day": when.strftime("%Y-%m-%d"), "month": when.strftime("%Y-%m"),
    }[group_by]


def _expected(records, group_by, since=None, until=None, user_id=None, api_key_id=None):
    """The summary computed directly from the records: key -> (requests, prompt,
    completion, cost or None, kWh, kg)."""
    acc: dict = defaultdict(lambda: [0, 0, 0, 0.0, 0, 0.0, 0.0])
    for r in records:
        if (since and r.created_at < since) or (until and r.created_at >= until):
            continue
        if (user_id and r.user_id != user_id) or (api_key_id and r.api_key_id != api_key_id):
            continue
        a = acc[_key(r, group_by)]
        a[0] += 1
        a[1] += r.prompt_tokens
        a[2] += r.completion_tokens
        if r.cost_usd is not None:
            a[3] += r.cost_usd
            a[4] += 1
        a[5] += r.energy_kwh
        a[6] += r.emissions_kg
    return {k: (a[0], a[1], a[2], a[3] if a[4] else None, a[5], a[6]) for k, a in acc.items()}


def _got(summary: s.UsageSummary):
    return {r.key: (r.requests, r.prompt_tokens, r.completion_tokens, r.cost_usd, r.energy_kwh,
                    r.emissions_kg) for r in summary.rows}


def _assert_matches(got, want):
    assert set(got) == set(want)
    for k, (n, p, c, cost, kwh, kg) in want.items():
        g = got[k]
        assert g[:3] == (n, p, c), k
        assert (g[3] is None) == (cost is None), k
        if cost is not None:
            assert g[3] == pytest.approx(cost), k
        assert g[4] == pytest.approx(kwh) and g[5] == pytest.approx(kg), k


def _rollup_requests(store) -> int:
    with store.session() as session:
        return session.scalar(select(func.coalesce(func.sum(UsageRollupRow.requests), 0)))


# --------------------------------------------------------------------------- record_usage


def test_a_retried_batch_is_written_once_and_rolled_up_once(store):
    batch = _records(40)
    assert store.record_usage(batch) == [r.id for r in batch]
    assert store.record_usage(batch) == [r.id for r in batch]  # the retry after a lost reply
    assert store.usage.list(page_size=100).total == 40
    assert _rollup_requests(store) == 40
    _assert_matches(_got(store.usage_summary("user")), _expected(batch, "user"))


def test_a_batch_mixing_new_and_stored_ids_adds_only_the_new(store):
    first = _records(30)
    store.record_usage(first[:20])
    fresh = s.UsageCreate(model="smol", prompt_tokens=3, completion_tokens=4)  # no id
    mixed = [*first[10:30], first[25], fresh]  # 10 stored, 10 new, one repeated, one new
    ids = store.record_usage(mixed)
    assert ids[:21] == [r.id for r in mixed[:21]]
    assert ids[21].startswith("use_")
    assert store.usage.get(ids[21]).total_tokens == 7
    assert store.usage.list(page_size=100).total == 31
    assert _rollup_requests(store) == 31
    stored = [*first, fresh.model_copy(update={"created_at": store.usage.get(ids[21]).created_at})]
    _assert_matches(_got(store.usage_summary("model")), _expected(stored, "model"))


def test_large_batches_go_in_chunks_and_keep_their_order(store):
    batch = _records(1203, seed=3)
    assert store.record_usage(batch) == [r.id for r in batch]
    assert store.usage.list(page_size=1).total == 1203
    assert store.usage_summary("day").total.requests == 1203


def test_created_at_is_kept_and_defaults_to_the_write(store):
    then = datetime(2025, 6, 1, 8, 30, tzinfo=timezone(timedelta(hours=2)))  # 06:30 UTC
    before = datetime.now(UTC)
    [old, now] = store.record_usage([s.UsageCreate(model="smol", created_at=then),
                                     s.UsageCreate(model="smol")])
    assert store.usage.get(old).created_at == then
    assert store.usage.get(now).created_at >= before - timedelta(seconds=1)
    days = [r.key for r in store.usage_summary("day").rows]
    assert days == ["2025-06-01", before.strftime("%Y-%m-%d")]
    with pytest.raises(ValueError, match="timezone"):
        s.UsageCreate(model="smol", created_at=datetime(2025, 6, 1))


def test_a_value_too_long_for_its_column_refuses_the_batch(pg_url):
    """PostgreSQL checks column lengths (SQLite does not): the batch writes nothing, and
    the value is never cut to fit."""
    from catalog.errors import InvalidArgument
    from catalog.store import CatalogStore

    store = CatalogStore.open(pg_url)
    try:
        with pytest.raises(InvalidArgument, match="too long"):
            store.record_usage([s.UsageCreate(id="ok", model="smol"),
                                s.UsageCreate.model_construct(id="bad", model="x" * 300)])
        assert store.usage.list().total == 0 and _rollup_requests(store) == 0
    finally:
        store.close()


def test_a_nul_byte_is_an_invalid_argument_on_postgresql(pg_url):
    """PostgreSQL text cannot hold NUL: a 422-class error naming the cause, not a 500."""
    from catalog.errors import InvalidArgument
    from catalog.store import CatalogStore

    store = CatalogStore.open(pg_url)
    try:
        with pytest.raises(InvalidArgument, match="NUL"):
            store.register_model(s.ModelCreate(name="nul\x00name", kind="base", path="/m"))
        assert store.models.list().total == 0
    finally:
        store.close()


def test_deleting_a_record_takes_it_out_of_the_summaries(store):
    records = _records(50)
    store.record_usage(records)
    gone = [r for r in records if r.user_id == "bob"]
    for r in gone:
        store.usage.delete(r.id)
    kept = [r for r in records if r.user_id != "bob"]
    for group_by in ("user", "adapter", "day"):
        _assert_matches(_got(store.usage_summary(group_by)), _expected(kept, group_by))
    with store.session() as session:  # no empty rollup rows left behind
        assert session.scalar(select(func.min(UsageRollupRow.requests))) >= 1


def test_usage_repo_filters_by_model_id_and_key(store):
    store.record_usage(_records(60))
    page = store.usage.list(model_id="mdl_fin", api_key_id="key_a", page_size=100)
    assert page.total == sum(1 for r in _records(60)
                             if r.model_id == "mdl_fin" and r.api_key_id == "key_a")
    assert {(u.model_id, u.api_key_id) for u in page.items} <= {("mdl_fin", "key_a")}


def test_concurrent_overlapping_batches_write_each_record_once(store):
    """Four writers send the same 200 records in different orders and batch sizes (a
    retry racing the original): no deadlock, every record once, rollups exact."""
    records = _records(200, seed=11)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        mine = records[:]
        rng.shuffle(mine)
        size = rng.choice([17, 50, 120])
        try:
            for i in range(0, len(mine), size):
                store.record_usage(mine[i:i + size])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors
    assert store.usage.list(page_size=1).total == 200
    assert _rollup_requests(store) == 200
    _assert_matches(_got(store.usage_summary("key")), _expected(records, "key"))


# --------------------------------------------------------------------------- usage_summary

HOUR = timedelta(hours=1)
RANGES = {
    "all": (None, None),
    "aligned": (START + 5 * HOUR, START + 40 * HOUR),
    "aligned since": (START + 26 * HOUR, None),
    "aligned until": (None, START + 2 * HOUR),
    "unaligned": (START + 5 * HOUR + timedelta(minutes=17, seconds=3),
                  START + 49 * HOUR + timedelta(minutes=41, microseconds=5)),
    "unaligned since": (START + timedelta(hours=30, minutes=1), None),
    "unaligned until": (None, START + timedelta(hours=3, minutes=59, seconds=59)),
    "within one hour": (START + timedelta(hours=7, minutes=10),
                        START + timedelta(hours=7, minutes=50)),
    "across one hour edge": (START + timedelta(hours=7, minutes=10),
                             START + timedelta(hours=8, minutes=50)),
    "half-hour zone": (datetime(2026, 1, 31, 10, 0, tzinfo=timezone(timedelta(hours=5,
                                                                              minutes=30))),
                       None),
}


@pytest.mark.parametrize("group_by", ["user", "key", "model", "adapter", "day", "month"])
def test_usage_summary_matches_the_records(store, group_by):
    records = _records(400)
    store.record_usage(records)
    for name, (since, until) in RANGES.items():
        summary = store.usage_summary(group_by, since=since, until=until)
        want = _expected(records, group_by, since, until)
        _assert_matches(_got(summary), want)
        assert (summary.group_by, summary.since, summary.until) == (group_by, since, until)
        keys = [r.key for r in summary.rows]
        assert keys == sorted(keys, key=lambda k: (k is None, str(k))), name
        total = summary.total
        assert total.key is None and total.requests == sum(v[0] for v in want.values()), name
        assert total.total_tokens == total.prompt_tokens + total.completion_tokens
    for user_id, key_id in (("alice", None), (None, "key_b"), ("bob", "key_a")):
        since, until = RANGES["unaligned"]
        for rng in ((None, None), (since, until)):
            got = store.usage_summary(group_by, since=rng[0], until=rng[1], user_id=user_id,
                                      api_key_id=key_id)
            _assert_matches(_got(got), _expected(records, group_by, *rng, user_id, key_id))


def test_usage_summary_rejects_bad_arguments(store):
    with pytest.raises(InvalidArgument) as err:
        store.usage_summary("color")
    assert err.value.field == "group_by"
    with pytest.raises(InvalidArgument) as err:
        store.usage_summary("day", since=datetime(2026, 1, 1))
    assert err.value.field == "since"
    empty = store.usage_summary("user")
    assert empty.rows == [] and empty.total.requests == 0 and empty.total.cost_usd is None


# --------------------------------------------------------------------------- carbon


def test_carbon_summary_in_the_seed_shape(store):
    base = base_model(store, "smol")
    data = dataset(store)
    adapter = store.register_model(s.ModelCreate(
        name="fin", kind="adapter", path="/a/fin", base_model_id=base.id, dataset_id=data.id))
    j1, j2 = job(store, base=base, data=data), job(store, base=base, data=data)
    for j, kg in ((j1, 0.04), (j1, 0.02), (j2, 0.1)):
        store.record_carbon(s.CarbonCreate(source="training", energy_kwh=kg * 2, emissions_kg=kg,
                                           training_job_id=j.id, model_id=adapter.id,
                                           user_id="alice"))
    store.record_carbon(s.CarbonCreate(source="inference", energy_kwh=0.02, emissions_kg=0.01,
                                       model_id=base.id))
    store.record_usage(
        [s.UsageCreate(model="smol", adapter="fin", model_id=adapter.id, prompt_tokens=5,
                       emissions_kg=0.002, energy_kwh=0.005, user_id="alice")] * 1
        + [s.UsageCreate(model="smol", model_id=base.id, emissions_kg=0.001, energy_kwh=0.003)
           for _ in range(3)]
        + [s.UsageCreate(kind="media", model="flux", provider="replicate", emissions_kg=0.005,
                         energy_kwh=0.01)])

    got = store.carbon_summary()
    assert got.training_emissions_kg == pytest.approx(0.16)
    assert got.inference_emissions_kg == pytest.approx(0.01 + 0.002 + 0.003 + 0.005)
    assert got.total_emissions_kg == pytest.approx(0.18)
    assert got.total_energy_kwh == pytest.approx(0.32 + 0.02 + 0.005 + 0.009 + 0.01)
    assert (got.num_training_jobs, got.num_inference_requests) == (2, 5)
    assert got.period == {"since": None, "until": None}
    by_model = [(m.model_id, m.model_name, round(m.emissions_kg, 6)) for m in got.by_model]
    assert by_model == [(adapter.id, "fin", 0.162), (base.id, "smol", 0.013),
                        (None, "flux", 0.005)]  # largest first; a provider's model by name
    assert sum(m.percentage for m in got.by_model) == pytest.approx(100)
    assert got.by_model[0].percentage == pytest.approx(100 * 0.162 / 0.18)
    # the grouped rows: usage under its model id (else its model name)
    rows = {r.key: (round(r.emissions_kg, 6), r.records) for r in got.rows}
    assert rows == {adapter.id: (0.162, 4), base.id: (0.013, 4), "flux": (0.005, 1)}
    by_source = {r.key: r.records for r in store.carbon_summary("source").rows}
    assert by_source == {"training": 3, "inference": 6}
    assert [(r.key, r.records) for r in store.carbon_summary("job").rows] == [
        (k, n) for k, n in sorted([(j1.id, 2), (j2.id, 1)])] + [(None, 1)]
    # one user's share; a period with nothing in it
    mine = store.carbon_summary(user_id="alice")
    assert (mine.num_training_jobs, mine.num_inference_requests) == (2, 1)
    assert mine.total_emissions_kg == pytest.approx(0.162)
    assert [m.percentage for m in mine.by_model] == [pytest.approx(100)]
    later = datetime.now(UTC) + timedelta(minutes=3)
    empty = store.carbon_summary("day", since=later)
    assert (empty.total_emissions_kg, empty.by_model, empty.rows) == (0, [], [])
    assert empty.period == {"since": later.isoformat(), "until": None}
    with pytest.raises(InvalidArgument):
        store.carbon_summary("color")


def test_carbon_summary_periods_read_partial_hours_from_the_records(store):
    records = _records(300, seed=5)
    store.record_usage(records)
    since, until = RANGES["unaligned"]
    got = store.carbon_summary("day", since=since, until=until)
    want = _expected(records, "day", since, until)
    assert {r.key: r.records for r in got.rows} == {k: v[0] for k, v in want.items()}
    assert got.num_inference_requests == sum(v[0] for v in want.values())
    assert got.inference_emissions_kg == pytest.approx(sum(v[5] for v in want.values()))
    by_model = {(m.model_id, m.model_name): m.emissions_kg for m in got.by_model}
    inside = [r for r in records if since <= r.created_at < until]
    assert by_model[("mdl_fin", None)] == pytest.approx(
        sum(r.emissions_kg for r in inside if r.model_id == "mdl_fin"))  # not in the catalog
    assert by_model[(None, "flux")] == pytest.approx(
        sum(r.emissions_kg for r in inside if r.model == "flux"))


# --------------------------------------------------------------------------- API keys


def test_api_key_limits_and_tokens_used(store):
    key, secret = store.create_api_key("alice", "ci", rpm_limit=60, tpm_limit=10_000,
                                       token_budget=1_000_000)
    assert (key.rpm_limit, key.tpm_limit, key.token_budget, key.tokens_used) == (
        60, 10_000, 1_000_000, 0)
    other, _ = store.create_api_key("bob", "laptop")
    assert (other.rpm_limit, other.tpm_limit, other.token_budget) == (None, None, None)
    batch = [s.UsageCreate(id=f"k{i}", model="smol", prompt_tokens=10, completion_tokens=5,
                           api_key_id=key.id, created_at=START + i * HOUR) for i in range(4)]
    store.record_usage(batch)
    store.record_usage(batch)  # retried: counted once
    store.record_usage([s.UsageCreate(model="smol", prompt_tokens=99, api_key_id=other.id)])
    assert store.authenticate(secret).tokens_used == 60
    assert store.api_keys.get(key.id).tokens_used == 60
    assert {k.id: k.tokens_used for k in store.api_keys.list().items} == {key.id: 60,
                                                                          other.id: 99}
    updated = store.api_keys.update(key.id, rpm_limit=5, token_budget=None)
    assert (updated.rpm_limit, updated.tpm_limit, updated.token_budget) == (5, 10_000, None)
    assert updated.tokens_used == 60
    with pytest.raises(InvalidArgument) as err:
        store.api_keys.update(key.id, tpm_limit=0)
    assert err.value.field == "tpm_limit"
    assert store.api_keys.get(key.id).tpm_limit == 10_000
    with pytest.raises(InvalidArgument):
        store.create_api_key("carol", "bad", rpm_limit=0)
    assert store.api_keys.list(user_id="carol").total == 0

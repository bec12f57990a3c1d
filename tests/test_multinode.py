"""Several machines on one host: a real multi-node Ray cluster (``ray.cluster_utils.Cluster``
starts a head and worker raylets, each its own node with its own resources), storage in a
real S3 API (``moto_server`` on loopback) and the catalog on the local PostgreSQL.

The head holds the catalog actor, the Serve controller and proxy, and the driver (this
process, where Ray Train's controller lives); worker nodes carry the custom resource
``garden_worker`` so training workers and the engine replica land there. A node is lost
the way a machine goes: ``remove_node(allow_graceful=False)`` kills its processes.

1. a 2-worker job spread over two nodes completes, checkpoints and adapter in the bucket,
   while (4) the catalog actor is killed mid-run and nothing acknowledged is lost;
2. a worker node is lost after the first checkpoint and another joins: the job resumes
   from the checkpoint in the bucket, repeats no step before it, counts carbon per node;
3. the engine replica serves the adapter of (1) by its bucket URI; its node is lost and
   another joins: the replica comes back there, and every request sent once it is
   healthy succeeds;
5. 600 requests to that replica while the catalog actor (on PostgreSQL) is killed 4
   times: every usage record lands exactly once;
6. the head's GCS (fault tolerant: its tables in a Redis the fixture starts) is killed
   and started again, as Ray's own GCS fault-tolerance tests do, while chats flow and a
   training job runs: every chat answered and billed once, the catalog actor never
   restarted, the job completes;
7. (issue 37) the engine replica SIGKILLed under load: every answered request billed.

The base model stays a local path every node of this host sees (uploading SmolLM2's
540 MB through moto would cost half a minute); ``tests/train_jobs/test_storage_uri.py``
stores a base model in a bucket. Timings of each scenario go to the test log
(``-s`` or ``-rA`` shows them).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import ray
import sqlalchemy

from catalog import schemas as s
from catalog import storage
from tests.conftest import (
    PG_ADMIN_URL,
    free_port,
    make_bucket,
    pg_schema_url,
    release_session_cluster,
    s3_env,
    start_redis,
    wait_for,
)

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.slow, pytest.mark.multinode]

#: The custom resource of worker nodes: jobs and the engine replica ask for it.
WORKER = "garden_worker"
ADMIN_KEY = "gk_multinode_admin_" + uuid.uuid4().hex
JOB_TIMEOUT_S = 420
BASE_NAME = "SmolLM2-135M-Instruct"
TIMINGS: dict[str, float] = {}


@dataclass
class Multi:
    """The cluster of this module and what lives on it."""

    cluster: object
    bucket: str
    root: Path
    dashboard: str
    cat: object
    base: s.Model
    dataset: s.Dataset
    homes: list[Path] = field(default_factory=list)
    home_of: dict[str, Path] = field(default_factory=dict)  # worker node id -> home
    #: the PostgreSQL schema of the catalog's tables
    db_schema: str = ""
    #: the OpenAI base URL of the LLM app test 3 deploys (``.../openai/v1``)
    llm_url: str = ""

    def add_worker(self):
        """A new worker node (its own GARDEN_HOME, so its own cache)."""
        home = self.root / f"node-{len(self.homes)}"
        self.homes.append(home)
        node = self.cluster.add_node(  # type: ignore[attr-defined]
            num_cpus=2, resources={WORKER: 1}, env_vars={"GARDEN_HOME": str(home)},
            dashboard_agent_listen_port=free_port())
        self.cluster.wait_for_nodes()  # type: ignore[attr-defined]
        self.home_of[node.node_id] = home
        return node

    def node(self, node_id: str):
        """The ``ray._private.node.Node`` of a worker node id."""
        return next(n for n in self.cluster.worker_nodes  # type: ignore[attr-defined]
                    if n.node_id == node_id)

    def lose(self, node_id: str) -> None:
        """Take a worker node away as a lost machine goes: its processes killed, its
        GARDEN_HOME (the node's local disk: caches, usage journal) deleted."""
        self.cluster.remove_node(self.node(node_id), allow_graceful=False)  # type: ignore
        shutil.rmtree(self.home_of[node_id], ignore_errors=True)


@pytest.fixture(scope="module")
def multi(s3_endpoint, smollm2_folder, tmp_path_factory):
    from ray.cluster_utils import Cluster
    from sqlalchemy import create_engine, text

    from catalog.actor import Catalog
    from corpora.chatterbot import chatterbot_pairs
    from corpora.registration import register_dataset

    release_session_cluster()
    schema = f"mn_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    bucket = make_bucket(s3_endpoint)
    root = tmp_path_factory.mktemp("multinode")
    dashboard_port = free_port()
    redis = start_redis(root / "redis")
    env = {**s3_env(s3_endpoint), "GARDEN_STORAGE_URI": f"s3://{bucket}/garden",
           "GARDEN_DATABASE_URL": pg_schema_url(schema), "GARDEN_HOME": str(root / "head"),
           "GARDEN_ADMIN_KEY": ADMIN_KEY, "VLLM_CPU_KVCACHE_SPACE": "1",
           # GCS fault tolerance (test 6): the head's GCS keeps its tables in Redis, as
           # `garden up --redis` and KubeRay's gcsFaultToleranceOptions set it up
           "RAY_REDIS_ADDRESS": redis.address}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)  # every raylet started from here inherits them
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1",
            "dashboard_port": dashboard_port, "dashboard_agent_listen_port": free_port(),
            # notice a lost node within seconds (defaults: 3 s x 5 checks)
            "_system_config": {"health_check_period_ms": 1000,
                               "health_check_failure_threshold": 3,
                               "health_check_initial_delay_ms": 1000},
        })
        started = time.monotonic()
        multi = Multi(cluster, bucket, root, f"http://127.0.0.1:{dashboard_port}",
                      None, None, None, db_schema=schema)  # type: ignore[arg-type]
        multi.add_worker()
        multi.add_worker()
        cluster.connect(namespace="garden")
        TIMINGS["cluster_start_s"] = time.monotonic() - started
        cat = Catalog()
        multi.cat = cat
        multi.base = cat.register_model(s.ModelCreate(
            name=BASE_NAME, kind=s.ModelKind.base, path=str(smollm2_folder)))
        data = root / "chat48.jsonl"
        data.write_text("".join(json.dumps(r) + "\n"
                                for r in chatterbot_pairs(["ai", "greetings"])[:48]))
        multi.dataset = register_dataset(cat, data, "chatterbot-48")
        try:
            yield multi
        finally:
            print("multinode timings:", json.dumps(TIMINGS, indent=1))
            ray.shutdown()
            cluster.shutdown()
            redis.stop()
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


def make_job(multi: Multi, name: str, **hp) -> s.TrainingJob:
    hyperparameters = {"max_steps": 4, "per_device_train_batch_size": 2, "max_seq_length": 64,
                       "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 2,
                       "save_total_limit": 1, "eval_steps": None, **hp}
    return multi.cat.create_training_job(s.TrainingJobCreate(  # type: ignore[attr-defined]
        name=name, base_model_id=multi.base.id, dataset_id=multi.dataset.id,
        eval_fraction=0.0, hyperparameters=hyperparameters, output_model_name=name,
        lora={"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        scaling={"num_workers": 2, "cpus_per_worker": 1, "max_failures": 3,
                 "placement_strategy": "STRICT_SPREAD", "resources_per_worker": {WORKER: 1}},
    ))


def start_job(multi: Multi, job_id: str) -> dict:
    """Run the job in a thread (the driver is this process, on the head)."""
    from train_jobs.run import run_job

    outcome: dict = {}

    def run():
        try:
            outcome["job"] = run_job(job_id, multi.cat)  # type: ignore[arg-type]
        except BaseException as exc:  # reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def finish(outcome: dict) -> s.TrainingJob:
    outcome["thread"].join(JOB_TIMEOUT_S)
    assert not outcome["thread"].is_alive(), "the job did not end in time"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["job"]


PLACED = re.compile(r"rank (\d+) on node ([0-9a-f]+)")


def placements(cat, job_id: str) -> list[dict[int, str]]:
    """Each worker group's rank -> node id, from the job's "workers placed" events."""
    return [{int(r): n for r, n in PLACED.findall(e["message"])}
            for e in cat.list_events(job_id) if e["message"].startswith("workers placed")]


def events(cat, job_id: str) -> list[str]:
    return [e["message"] for e in cat.list_events(job_id)]


def no_local_copies(multi: Multi) -> None:
    """Nothing of storage's was written to a node's local disk (caches aside)."""
    for home in [multi.root / "head", *multi.homes]:
        for kind in ("runs", "models", "datasets"):
            assert not (home / kind).exists(), home / kind


# ----------------------------------------------------------------------------- 1 and 4


def test_spread_job_completes_into_the_bucket_while_the_catalog_actor_is_killed(multi):
    from catalog.actor import get_catalog

    cat = multi.cat
    started = time.monotonic()
    job = make_job(multi, "spread")
    outcome = start_job(multi, job.id)
    # (4) kill the catalog actor (not its node) once training reports
    wait_for(lambda: cat.list_metrics(job.id), JOB_TIMEOUT_S, "first metric point",
             interval_s=0.5)
    acknowledged = cat.list_metrics(job.id)
    ray.kill(get_catalog(), no_restart=False)
    done = finish(outcome)
    TIMINGS["scenario_1_and_4_s"] = time.monotonic() - started
    assert done.status == "completed", done.error_message

    # the workers ran on the two worker nodes, one each
    groups = placements(cat, job.id)
    assert len(groups) == 1 and len(set(groups[0].values())) == 2
    worker_ids = {n.node_id for n in multi.cluster.worker_nodes}
    assert set(groups[0].values()) <= worker_ids

    # nothing acknowledged before the kill is lost; every step after it is there too
    points = {p.step: p for p in cat.list_metrics(job.id)}
    assert sorted(points) == [1, 2, 3, 4]
    for before in acknowledged:
        assert points[before.step].train_loss == pytest.approx(before.train_loss)
    assert [m for m in events(cat, job.id) if "status ->" in m][-1] == "status -> completed"

    # checkpoints and adapter in the bucket, not on a local disk
    prefix = f"s3://{multi.bucket}/garden/"
    checkpoints = cat.list_checkpoints(job.id)
    assert checkpoints and all(c.path.startswith(prefix + "runs/") for c in checkpoints)
    for c in checkpoints:
        assert storage.exists(storage.join(c.path, "adapter_model.safetensors"))
        assert c.size_bytes == storage.size_bytes(c.path) > 0
    model = cat.models.get(done.output_model_id)
    assert re.fullmatch(rf"{re.escape(prefix)}models/spread-v1-[0-9a-f]{{8}}", model.path)
    assert storage.exists(storage.join(model.path, "adapter_config.json"))
    assert not storage.exists(storage.join(model.path, "optimizer.pt"))
    assert multi.dataset.path.startswith(prefix + "datasets/")
    no_local_copies(multi)

    # carbon: one record per node the workers ran on
    records = cat.carbon.list(training_job_id=job.id).items
    assert sorted(r.details["node_id"] for r in records) == sorted(groups[0].values())
    assert all(r.model_id == model.id and r.energy_kwh > 0 for r in records)


# ----------------------------------------------------------------------------- 2


def linear_schedule(learning_rate: float, steps: int) -> list[float]:
    """The learning rate each of ``steps`` optimizer steps runs with under transformers'
    linear schedule with no warmup (``get_scheduler("linear")``), as the Trainer logs it
    at that step."""
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=learning_rate)
    schedule = get_scheduler("linear", optimizer, num_warmup_steps=0,
                             num_training_steps=steps)
    out = []
    for _ in range(steps):
        out.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return out


def test_a_lost_node_resumes_from_the_checkpoint_in_the_bucket(multi):
    """A worker node is lost after the first checkpoint. Every node has its own
    GARDEN_HOME, and before a new node joins the test deletes the first group's local
    scratch folders (where the Trainer wrote its checkpoints), so the bucket is the only
    place to resume from. The new group names the checkpoint it loaded: the newest saved
    before the failure, in the bucket, whose trainer state is at that step; and the
    learning rate of all 8 steps follows one linear schedule (the scheduler's state was
    loaded, not started again)."""
    cat = multi.cat
    started = time.monotonic()
    job = make_job(multi, "survivor", max_steps=8, save_total_limit=4, warmup_steps=0,
                   warmup_ratio=0.0, lr_scheduler_type="linear")
    outcome = start_job(multi, job.id)
    wait_for(lambda: cat.list_checkpoints(job.id), JOB_TIMEOUT_S, "first checkpoint",
             interval_s=0.2)
    first = placements(cat, job.id)[0]
    lost = first[1]
    multi.lose(lost)
    lost_at = time.monotonic()
    wait_for(lambda: any(m.startswith("worker") and "failed:" in m
                         for m in events(cat, job.id)), 120, "the group's failure",
             interval_s=0.2)
    scratch = sorted(Path(tempfile.gettempdir()).glob(f"garden-{job.id}-rank*"))
    assert any(folder.glob("checkpoint-*") for folder in scratch), scratch
    for folder in scratch:
        shutil.rmtree(folder)
    added = multi.add_worker()
    done = finish(outcome)
    TIMINGS["scenario_2_s"] = time.monotonic() - started
    TIMINGS["scenario_2_resume_s"] = time.monotonic() - lost_at
    assert done.status == "completed", done.error_message

    log = events(cat, job.id)
    failed_at = next(i for i, m in enumerate(log) if "failed:" in m and m.startswith("worker"))
    saved = [(i, int(step), uri) for i, m in enumerate(log)
             for step, uri in re.findall(r"^checkpoint at step (\d+): (\S+)$", m)]
    last_before, newest = max((step, uri) for i, step, uri in saved if i < failed_at)
    # the new group loaded the newest checkpoint from the bucket: it trained no step up
    # to it again, and that checkpoint's trainer state is at its step
    resumed = [re.fullmatch(r"resumed at step (\d+) from (\S+) after a restart", m)
               for m in log if m.startswith("resumed at step")]
    assert len(resumed) == 1 and resumed[0], log
    assert (int(resumed[0][1]), resumed[0][2]) == (last_before + 1, newest), log
    assert newest.startswith(f"s3://{multi.bucket}/garden/runs/")
    state = json.loads(storage.read_bytes(storage.join(newest, "trainer_state.json")))
    assert state["global_step"] == last_before
    assert [step for _, step, _ in saved] == sorted({step for _, step, _ in saved})
    points = sorted(cat.list_metrics(job.id), key=lambda p: p.step)
    assert [p.step for p in points] == list(range(1, 9))
    assert [p.learning_rate for p in points] == pytest.approx(linear_schedule(1e-3, 8))

    # the second group replaced the lost node with the new one
    groups = placements(cat, job.id)
    assert len(groups) == 2
    assert lost not in groups[1].values() and added.node_id in groups[1].values()

    # carbon counted once per node: the kept node (two trackers, one per group), the lost
    # one (what it reported before it went) and the new one
    records = {r.details["node_id"]: r for r in cat.carbon.list(training_job_id=job.id).items}
    nodes = set(groups[0].values()) | set(groups[1].values())
    assert set(records) == nodes and len(nodes) == 3
    kept = next(iter(set(groups[0].values()) & set(groups[1].values())))
    assert records[kept].details["sessions"] == 2
    assert records[lost].details["sessions"] == 1 and records[lost].energy_kwh > 0
    assert done.energy_kwh == pytest.approx(sum(r.energy_kwh for r in records.values()))
    kept_checkpoints = cat.list_checkpoints(job.id)
    assert kept_checkpoints and all(c.path.startswith(f"s3://{multi.bucket}/")
                                    for c in kept_checkpoints)


# ----------------------------------------------------------------------------- 3


@ray.remote(num_cpus=0, resources={WORKER: 1})
class Hold:
    """Holds a worker node's ``garden_worker`` resource (nothing else lands there)."""


def engine_replica_node(multi: Multi) -> str | None:
    """The node of the alive, RUNNING engine replica, or None."""
    from ray import serve
    from ray.util.state import list_actors

    app = serve.status().applications.get("llm")
    deployment = app.deployments.get("LLMServer") if app else None
    if deployment is None or deployment.replica_states.get("RUNNING", 0) < 1:
        return None
    actors = list_actors(address=multi.dashboard, filters=[("state", "=", "ALIVE")],
                         limit=1000)
    nodes = [a.node_id for a in actors if a.class_name.startswith("ServeReplica:llm:LLMServer")]
    return nodes[0] if len(nodes) == 1 else None


def test_the_engine_replica_serves_the_bucket_adapter_and_comes_back_on_a_new_node(multi):
    from ray import serve
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from serve_apps.llm import LLMAppConfig, build_llm_app

    cat = multi.cat
    adapter = cat.models.list(kind="adapter", name="spread").items[0]
    assert adapter.path.startswith(f"s3://{multi.bucket}/")
    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    config = LLMAppConfig(
        model=multi.base.id,
        engine_args={"max_model_len": 512, "dtype": "float32", "max_num_seqs": 4,
                     "max_loras": 1, "max_lora_rank": 8},
        deployment={"ray_actor_options": {"num_cpus": 1, "resources": {WORKER: 1}}},
        energy_sample_s=1.0,
        usage_spool_after_s=SPOOL_AFTER_S,  # test 5 sees records spooled to the bucket
    )
    started = time.monotonic()
    serve.run(build_llm_app(config), name="llm", route_prefix=config.route_prefix)
    TIMINGS["engine_start_s"] = time.monotonic() - started
    multi.llm_url = f"http://127.0.0.1:{port}{config.route_prefix}/v1"
    url = f"{multi.llm_url}/completions"
    http = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)
    body = {"model": f"{BASE_NAME}:{adapter.name}:{adapter.version}",
            "prompt": "Hello, who are you?", "max_tokens": 4, "temperature": 0}

    first = http.post(url, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["model"] == body["model"]
    node = engine_replica_node(multi)
    assert node in {n.node_id for n in multi.cluster.worker_nodes}

    sent: list[tuple[float, bool]] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            at = time.monotonic()
            try:
                ok = http.post(url, json=body).status_code == 200
            except httpx.HTTPError:
                ok = False
            sent.append((at, ok))
            if not ok:
                time.sleep(0.5)

    # the other worker nodes are kept busy, so the node that joins is the only place left
    holders = [Hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, False))
               .remote() for n in multi.cluster.worker_nodes if n.node_id != node]
    ray.get([h.__ray_ready__.remote() for h in holders], timeout=60)
    sender = threading.Thread(target=load, daemon=True)
    sender.start()
    wait_for(lambda: len(sent) >= 2, 60, "requests before the loss", interval_s=0.5)
    multi.lose(node)
    lost_at = time.monotonic()
    added = multi.add_worker()
    back = wait_for(lambda: engine_replica_node(multi), 600, "a healthy replica again",
                    interval_s=1.0)
    healthy_at = time.monotonic()
    wait_for(lambda: sum(1 for at, _ in sent if at > healthy_at) >= 5, 120,
             "requests after recovery", interval_s=0.5)
    stop.set()
    sender.join(150)
    http.close()

    TIMINGS["replica_back_s"] = healthy_at - lost_at
    failed = [at for at, ok in sent if not ok]
    TIMINGS["requests_sent"] = len(sent)
    TIMINGS["requests_failed"] = len(failed)
    assert back == added.node_id  # the replica came back on the node that joined
    after = [ok for at, ok in sent if at > healthy_at]
    assert len(after) >= 5 and all(after), sent
    # failures only while no replica existed: none before the loss, none once healthy
    assert all(lost_at - 1.0 <= at <= healthy_at for at in failed), (failed, lost_at)
    for holder in holders:
        ray.kill(holder)


#: The engine replica spools a usage record that has waited this long unacknowledged
#: (``LLMAppConfig.usage_spool_after_s``; 10 s by default, longer than a restart here).
SPOOL_AFTER_S = 2.0


@contextmanager
def usage_table_locked(multi: Multi) -> Iterator[sqlalchemy.Connection]:
    """Hold PostgreSQL's EXCLUSIVE lock on the catalog's usage table (inserts wait on
    it, reads go on) in a transaction of our own, rolled back on exit."""
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"LOCK TABLE {multi.db_schema}.usage_records IN EXCLUSIVE MODE"))
            yield conn
            conn.rollback()
    finally:
        engine.dispose()


def spool_watch(folder: str, seen: set[str], stop: threading.Event) -> None:
    """Add the files in ``folder`` to ``seen`` every 0.2 s until ``stop``."""
    while not stop.is_set():
        seen.update(storage.list_files(folder))
        stop.wait(0.2)


def every_chat_answered_and_billed_once(cat, key_id: str, n: int, prompt_tokens: int,
                                        completion_tokens: int) -> None:
    """The key has exactly one usage row for each of its ``n`` answered chats, with the
    tokens the answers reported."""
    total = wait_for(lambda: (t := cat.usage_summary("key", api_key_id=key_id).total)
                     .requests >= n and t, 120, "every usage row", interval_s=0.5)
    assert (total.requests, total.prompt_tokens, total.completion_tokens) == (
        n, prompt_tokens, completion_tokens)
    ids: set[str] = set()
    rows = 0
    cursor = None
    while True:
        page = cat.usage.list(api_key_id=key_id, page_size=1000, cursor=cursor)
        rows += len(page.items)
        ids.update(r.id for r in page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    assert rows == len(ids) == n


def test_no_usage_lost_or_doubled_on_postgresql_while_the_catalog_actor_is_killed(multi):
    """Issue 13's kill test with PostgreSQL as the catalog and the spool in the bucket,
    sized for CI: 600 requests at concurrency 16 to the replica of test 3, the catalog
    actor killed 4 times, each while a usage insert waits on the table's lock: every
    request answered, exactly one usage row each, with its tokens; Ray restarted the actor
    4 times, the replica retried the writes the kills cut off, and the records that
    waited longer than ``SPOOL_AFTER_S`` went to spool files in the bucket, replayed and
    deleted."""
    from sqlalchemy import text

    from tests.serve_apps.llm.load import (
        actor_restarts,
        chat_while_killing,
        kill_mid_write,
        usage_stats,
    )

    assert multi.llm_url, "test 3 deploys the LLM app"
    cat = multi.cat
    held: list[sqlalchemy.Connection] = []

    @contextmanager
    def hold_writes():
        with usage_table_locked(multi) as conn:
            held.append(conn)
            yield
            held.pop()

    def insert_waiting() -> None:
        """Until an insert waits on our lock, then as long again as a record may wait
        unspooled: the records behind the cut-off batch are spooled."""
        wait_for(lambda: held[-1].execute(text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
            f"'{multi.db_schema}.usage_records'::regclass")).scalar(), 30,
            "a usage insert waiting on the lock", interval_s=0.1)
        time.sleep(SPOOL_AFTER_S + 1.0)

    key, secret = cat.create_api_key(f"kill-{uuid.uuid4().hex[:8]}", "kill test")
    spool = f"s3://{multi.bucket}/garden/spool/usage"
    restarts, before = actor_restarts(cat.handle), usage_stats()
    assert before["spool"] == spool
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=spool_watch, args=(spool, seen, stop), daemon=True)
    watcher.start()
    run = chat_while_killing(multi.llm_url, secret, BASE_NAME,
                             kill_mid_write(cat.handle, hold_writes, insert_waiting),
                             requests=600, concurrency=16, kills=4)
    TIMINGS["kill_test_s"] = run.seconds
    assert run.kills == 4
    assert run.statuses.count(200) == 600, sorted(set(run.statuses))
    every_chat_answered_and_billed_once(cat, key.id, 600, run.prompt_tokens,
                                        run.completion_tokens)

    # the kills met usage writes, and what waited went through the bucket
    assert actor_restarts(cat.handle) - restarts == 4
    after = wait_for(lambda: (st := usage_stats())["spool_files"] == 0 and st, 120,
                     "every spool file replayed", interval_s=0.5)
    stop.set()
    watcher.join(10)
    retried = (after["catalog_retries"] - before["catalog_retries"]
               + after["failures"] - before["failures"])
    spooled = after["spooled"] - before["spooled"]
    TIMINGS["kill_test_retried_writes"] = retried
    TIMINGS["kill_test_spooled_records"] = spooled
    TIMINGS["kill_test_spool_files_seen"] = len(seen)
    assert retried > 0 and spooled > 0
    assert after["replayed"] - before["replayed"] >= spooled
    assert seen and all(f.startswith(spool + "/usage-") for f in seen), seen
    assert not storage.list_files(spool)  # replayed, then deleted


# ----------------------------------------------------------------------------------- 6

#: How long the GCS stays down: several usage batches (one a second) and training steps.
GCS_DOWN_S = 8.0


def test_chats_and_a_training_job_live_through_a_gcs_restart(multi):
    """The head's GCS killed while chats flow (concurrency 6) and a 1-worker training job
    trains, down for ``GCS_DOWN_S``, then started again on its port with its tables from
    Redis (``Node.kill_gcs_server``/``start_gcs_server``, as Ray's
    ``test_gcs_fault_tolerance.py``): the Serve proxy keeps routing to the replica and
    the replica keeps writing usage to the catalog actor (calls to a known actor need no
    GCS), so chats are answered while it is down and none fails, each has exactly one
    usage row, the catalog actor is not restarted, and the job completes."""
    from ray.util.state import list_nodes

    from tests.serve_apps.llm.load import SYSTEM, Load, actor_restarts

    assert multi.llm_url, "test 3 deploys the LLM app"
    cat = multi.cat
    head = multi.cluster.head_node  # type: ignore[attr-defined]
    restarts = actor_restarts(cat.handle)
    job = cat.create_training_job(s.TrainingJobCreate(
        name="through-gcs", base_model_id=multi.base.id, dataset_id=multi.dataset.id,
        eval_fraction=0.0, output_model_name="through-gcs",
        hyperparameters={"max_steps": 8, "per_device_train_batch_size": 2,
                         "max_seq_length": 64, "learning_rate": 1e-3, "logging_steps": 1,
                         "save_steps": 4, "save_total_limit": 1, "eval_steps": None},
        lora={"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        scaling={"num_workers": 1, "cpus_per_worker": 1, "max_failures": 3,
                 "resources_per_worker": {WORKER: 1}}))
    outcome = start_job(multi, job.id)
    wait_for(lambda: cat.list_metrics(job.id), JOB_TIMEOUT_S, "the job's first step")
    key, secret = cat.create_api_key(f"gcs-{uuid.uuid4().hex[:8]}", "gcs outage")
    body = {"model": BASE_NAME, "max_tokens": 1, "temperature": 0,
            "messages": [SYSTEM, {"role": "user", "content": "Hi"}]}
    nodes = 1 + len(multi.cluster.worker_nodes)  # type: ignore[attr-defined]
    with Load(f"{multi.llm_url}/chat/completions", body, concurrency=6,
              headers={"Authorization": f"Bearer {secret}"}) as load:
        wait_for(lambda: len(load.answers) >= 10, 120, "chats before the outage")
        at_kill = cat.training_jobs.get(job.id)
        head.kill_gcs_server()
        killed = time.monotonic()
        time.sleep(GCS_DOWN_S)
        head.start_gcs_server()
        restarted = time.monotonic()
        wait_for(lambda: sum(n.state == "ALIVE" for n in list_nodes(
            address=multi.dashboard, raise_on_missing_output=False)) == nodes, 120,
            "every node alive again", interval_s=0.5)
        recovered_s = time.monotonic() - restarted
        wait_for(lambda: sum(a.at > restarted for a in load.answers) >= 10, 120,
                 "chats after the restart")
    done = finish(outcome)
    during = [a for a in load.answers if killed < a.at < restarted]
    TIMINGS.update({"gcs_down_s": restarted - killed, "gcs_nodes_back_s": recovered_s,
                    "gcs_chats": len(load.answers), "gcs_chats_while_down": len(during),
                    "gcs_failed_chats": len(load.failed())})
    assert at_kill.status == "running" and at_kill.current_step < 8
    assert during and not load.failed(), load.failed()[:3]
    every_chat_answered_and_billed_once(
        cat, key.id, len(load.answers), sum(a.prompt_tokens for a in load.answers),
        sum(a.completion_tokens for a in load.answers))
    assert actor_restarts(cat.handle) == restarts  # the catalog never left
    assert done.status == "completed", (done.status, done.error_message)
    assert done.current_step == 8


# ----------------------------------------------------------------------------------- 7

def test_no_answered_request_unbilled_on_postgresql_when_the_engine_replica_is_killed(multi):
    """Issue 37's replica kill with PostgreSQL as the catalog: the engine replica of test 3
    SIGKILLed half-way through 160 chats at concurrency 16 (the other worker nodes held, so
    Serve starts its replacement on the same node, where the journal is): every answered
    request billed exactly once (:func:`check_billed`)."""
    from ray import serve
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from catalog.usage_journal import default_journal_folder
    from tests.serve_apps.llm.load import (
        billed_rows,
        chat_while_killing,
        check_billed,
        replica_pid,
        sigkill,
    )

    assert multi.llm_url, "test 3 deploys the LLM app"
    cat = multi.cat
    node = wait_for(lambda: engine_replica_node(multi), 120, "the engine replica")
    holders = [Hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, False))
               .remote() for n in multi.cluster.worker_nodes if n.node_id != node]
    ray.get([h.__ray_ready__.remote() for h in holders], timeout=60)
    key, secret = cat.create_api_key(f"replica-kill-{uuid.uuid4().hex[:8]}", "kill test")
    pid = replica_pid(multi.dashboard)
    run = chat_while_killing(multi.llm_url, secret, BASE_NAME, sigkill(pid), requests=160,
                             concurrency=16, kills=1)
    TIMINGS["replica_kill_test_s"] = run.seconds
    answered = run.statuses.count(200)
    TIMINGS["replica_kill_answered"] = answered
    assert run.kills == 1 and engine_replica_node(multi) == node
    assert 160 - 16 <= answered < 160  # only requests in flight at the kill may fail
    journals = [default_journal_folder(home) for home in [multi.root / "head", *multi.homes]]
    rows = billed_rows(cat, key.id, answered, journals, pid)
    check_billed(run, rows)
    for holder in holders:
        ray.kill(holder)
    serve.delete("llm")

"""Load against a deployed app while something is killed (the catalog actor, issue 13's
kill test; the engine replica, issue 37's; the GCS, issue 31's) or changed (an upgrade,
autoscaling: issue 31), and what each needs to find and kill its target."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import ray

from serve_apps.llm.ingress import REPLICA_HEADER

#: A short system message: SmolLM2's chat template otherwise adds its own (38 prompt
#: tokens a chat instead of 25), and on 2 CPU cores prefill is most of the engine's work
#: for these one-token replies: 256 chats took vLLM 11.4 s with the template's system
#: message and 7.4 s with this one (offline ``LLM.chat``, two runs each).
SYSTEM = {"role": "system", "content": "Be brief."}


@dataclass(frozen=True)
class Answer:
    """One request of a :class:`Load`: when it ended (monotonic s), its HTTP status (0:
    no answer), the replica header, and a chat answer's id and tokens."""

    at: float
    status: int
    replica: str = ""
    id: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Load:
    """The same request sent from ``concurrency`` threads, again and again, from
    ``with`` until :meth:`stop`; :attr:`answers` in the order they ended. ``body`` None
    sends GETs."""

    url: str
    body: dict | None
    concurrency: int
    headers: dict = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.concurrency):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=600) as http:
            while not self._stop.is_set():
                try:
                    r = (http.post(self.url, json=self.body) if self.body is not None
                         else http.get(self.url))
                except httpx.HTTPError:
                    self.answers.append(Answer(time.monotonic(), 0))
                    time.sleep(0.2)
                    continue
                usage = (r.json().get("usage") or {}) if r.status_code == 200 and (
                    self.body is not None) else {}
                self.answers.append(Answer(
                    time.monotonic(), r.status_code, r.headers.get(REPLICA_HEADER, ""),
                    r.json().get("id", "") if usage else "",
                    usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(600)

    def __exit__(self, *exc) -> None:
        self.stop()

    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def replicas(self) -> set[str]:
        """The replicas that answered 200."""
        return {a.replica for a in self.answers if a.status == 200}


@dataclass
class KillRun:
    """What a :func:`chat_while_killing` run saw."""

    statuses: list[int] = field(default_factory=list)  # 0: no HTTP answer at all
    answered: list[str] = field(default_factory=list)  # the 200 responses' ids
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kills: int = 0
    seconds: float = 0.0
    emissions_g: list[float] = field(default_factory=list)


def chat_while_killing(url: str, key: str, model: str, kill: Callable[[], None], *,
                       requests: int, concurrency: int, kills: int) -> KillRun:
    """Send ``requests`` one-token chat requests at ``concurrency`` to ``url``
    (``.../openai/v1``) with ``key``, calling ``kill`` (e.g. :func:`kill_mid_write` of the
    catalog, which Ray restarts) ``kills`` times, evenly over the run's progress."""
    run = KillRun()
    every = requests // (kills + 1)

    async def main() -> None:
        done = 0
        next_kill = every
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=300,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            async def one(i: int) -> None:
                nonlocal done, next_kill
                async with gate:
                    try:
                        r = await http.post("/chat/completions", json={
                            "model": model, "max_tokens": 1, "temperature": 0,
                            "messages": [SYSTEM, {"role": "user",
                                                  "content": f"Count to {i}."}]})
                    except httpx.TransportError:  # the connection dropped: no answer
                        r = None
                run.statuses.append(r.status_code if r is not None else 0)
                if r is not None and r.status_code == 200:
                    body = r.json()
                    run.answered.append(body["id"])
                    run.prompt_tokens += body["usage"]["prompt_tokens"]
                    run.completion_tokens += body["usage"]["completion_tokens"]
                    run.emissions_g.append(body["carbon_emissions_g"])
                done += 1
                if run.kills < kills and done >= next_kill:
                    next_kill += every
                    run.kills += 1
                    await asyncio.to_thread(kill)

            await asyncio.gather(*(one(i) for i in range(requests)))

    started = time.monotonic()
    asyncio.run(main())
    run.seconds = time.monotonic() - started
    return run


#: How long a kill waits, with the usage table locked, for the replica's next usage
#: batch to reach the database (a batch leaves each second, ``flush_interval_s``).
BATCH_WAIT_S = 1.5


def kill_mid_write(handle, hold_writes: Callable[[], AbstractContextManager[None]],
                   wait: Callable[[], None] = lambda: time.sleep(BATCH_WAIT_S)
                   ) -> Callable[[], None]:
    """A ``kill`` for :func:`chat_while_killing` that lands on a usage write in flight:
    with ``hold_writes()`` holding the database's write lock on the usage table (reads go
    on), ``wait()`` until the catalog actor's next usage transaction waits on it, then
    ``ray.kill`` the actor (Ray restarts it) and let go of the lock. The batch in that
    transaction never gets its answer: the replica must send it again."""
    def kill() -> None:
        with hold_writes():
            wait()
            ray.kill(handle, no_restart=False)

    return kill


@contextmanager
def sqlite_write_lock(url: str) -> Iterator[None]:
    """Hold the write lock of the SQLite database at ``url`` (``sqlite:///path``): a
    ``BEGIN IMMEDIATE`` transaction of our own; readers go on (WAL)."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def actor_restarts(handle) -> int:
    """How many times Ray has restarted the actor of ``handle`` (Ray's state API)."""
    from ray.util.state import get_actor

    state = get_actor(handle._actor_id.hex())
    assert state is not None, "the actor is unknown to Ray's state API"
    return state.num_restarts


def usage_stats(app: str = "llm", deployment: str = "LLMServer") -> dict:
    """The engine replica's usage accounting counts (``LLMServer.usage_stats``)."""
    from ray import serve

    return serve.get_deployment_handle(deployment, app).usage_stats.remote().result(
        timeout_s=60)


def replica_pid(address: str, app: str = "llm") -> int | None:
    """The pid of the one live replica of ``app``'s engine deployment (Ray's state API at
    the dashboard ``address``), or None while there is not exactly one."""
    from ray.util.state import list_actors

    actors = list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=1000)
    pids = [a.pid for a in actors if a.class_name.startswith(f"ServeReplica:{app}:")]
    return pids[0] if len(pids) == 1 else None


def sigkill(pid: int) -> Callable[[], None]:
    """A ``kill`` for :func:`chat_while_killing`: SIGKILL of the process ``pid`` on this
    machine (a replica dies as on an out-of-memory kill: no shutdown hook runs)."""
    return lambda: os.kill(pid, signal.SIGKILL)


def check_billed(run: KillRun, rows: list) -> None:
    """Every answered request of ``run`` billed exactly once, with the tokens its response
    reported; a row for no answer only for a request that failed at the kill (the replica
    died after journaling it, before its response left: generated, so billed)."""
    assert len(rows) == len({r.id for r in rows})
    answered = set(run.answered)
    assert len(answered) == len(run.answered)
    own = [r for r in rows if r.details.get("request_id") in answered]
    assert sorted(r.details["request_id"] for r in own) == sorted(answered)
    extra = len(rows) - len(answered)
    assert 0 <= extra <= len(run.statuses) - len(answered), (extra, run.statuses)
    assert (sum(r.prompt_tokens for r in own), sum(r.completion_tokens for r in own)) == (
        run.prompt_tokens, run.completion_tokens)


def billed_rows(catalog, key_id: str, answered: int, journals: list[Path], killed: int,
                timeout_s: float = 300.0) -> list:
    """The usage rows of ``key_id`` once the catalog counts at least ``answered`` requests
    and the killed replica's (pid ``killed``) journal segments in the nodes' usage journal
    folders ``journals`` are gone (replayed by its successor: no late row can still come).
    Only its own: a replica lost with its node in an earlier test leaves segments that no
    buffer on that node will replay. Raises TimeoutError naming what it saw."""
    deadline = time.monotonic() + timeout_s
    while True:
        catalog.flush()
        total = catalog.usage_summary("key", api_key_id=key_id).total
        left = sorted(p.name for folder in journals
                      for p in folder.glob(f"usage-{killed}-*.jsonl"))
        if total.requests >= answered and not left:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{total.requests} of {answered} rows; journal segments {left}")
        time.sleep(0.5)
    rows, cursor = [], None
    while True:
        page = catalog.usage.list(api_key_id=key_id, page_size=1000, cursor=cursor)
        rows.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            return rows

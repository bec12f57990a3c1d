"""Serving benchmark: our LLM app against vLLM's own OpenAI server (and Ray Serve LLM).

Every peer is started once and kept up for the whole run: vLLM's OpenAI server
(``vllm.entrypoints.openai.api_server``, a subprocess), our LLM app and, where it
runs, Ray Serve LLM's ``build_openai_app`` (both on one local Ray cluster). They get
the same model (SmolLM2-135M-Instruct, float32), the same engine arguments and the
same adapters. The load alternates between them: for each round, for each level, each
peer in turn (the order rotates every round), so a burst of noise on this shared
machine hits every peer alike. Ratios are taken per round and printed as the median
with its spread (min-max) over the rounds.

Parts, all printed by one run:

1. **Latency and throughput** at 1, 8 and 32 concurrent requests, at least
   3 x concurrency requests a level, with the fixed prompt and with prompts of mixed
   lengths (about 10 to 700 tokens); every request asks for exactly ``--max-tokens``
   tokens (``ignore_eos``). Targets: ours >= 0.95x vLLM's tokens/s, <= 1.10x its p50.
2. **Many adapters**: traffic spread uniformly over 1, 4 and 16 random LoRA adapters
   of the base (r=8 on q/v) and base-only traffic, on ours and on vLLM's server
   (``--lora-modules``): tokens/s against base-only on each, and ours/vLLM per count.
3. **A merged adapter** (``train_jobs.merge.merge_adapter``, PEFT ``merge_and_unload``)
   deployed as its own LLM app, against the base and the adapter served as an adapter.
4. **Cold start**: ``garden up`` to an LLM app that answers, and the engine replica's
   restart after it is killed, to the first answered request (target <= 60 s).

Our requests carry a user's API key (not the admin key), so the measured path is the
one users take: key lookup (cached), limits, usage records, carbon. vLLM's own server
and Ray Serve LLM get the same header and ignore it.

Run: ``python -m bench.serve_latency`` (about 30 minutes on 2 CPU cores);
``--rounds``, ``--levels``, ``--skip-*`` shorten it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

MODEL = "SmolLM2-135M-Instruct"
PROMPT = "Write a short story about a robot who learns to paint."
#: Words the mixed-length prompts are cut from.
PASSAGE = ("The quick brown fox jumps over the lazy dog while the painter mixes blue and "
           "yellow paint on a wooden palette near the window.")
#: Engine arguments shared by every peer (vLLM CLI names).
ENGINE = {"max_model_len": 1024, "dtype": "float32", "max_num_seqs": 32,
          "max_loras": 4, "max_lora_rank": 16, "max_cpu_loras": 16}
#: Adapter counts of the multi-adapter part (0: base-only traffic).
ADAPTER_COUNTS = (0, 1, 4, 16)
#: KV cache per engine in GiB (``VLLM_CPU_KVCACHE_SPACE``): four engines share the host.
KV_GIB = "1"

#: Admin key of our cluster (only used to register what the bench needs).
ADMIN_KEY = "gk_bench_admin_" + uuid.uuid4().hex


def mixed_prompts() -> list[str]:
    """Eight prompts from about 10 to about 700 tokens (SmolLM2's tokenizer), each a
    different length; request ``i`` of a level sends prompt ``i % 8``."""
    words = PASSAGE.split()
    out = []
    for n_words in (6, 24, 60, 120, 200, 300, 400, 500):
        body = " ".join(words[i % len(words)] for i in range(n_words))
        out.append(f"Summarise this text in one sentence: {body}")
    return out


# ----------------------------------------------------------------------------- peers


@dataclass
class Peer:
    """One server under test: its OpenAI base URL, API key and served model names."""

    name: str
    url: str
    key: str
    base: str
    adapters: list[str] = field(default_factory=list)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, key: str, timeout_s: float, proc: subprocess.Popen | None = None,
               model: str | None = None) -> float:
    """Poll until ``url`` answers a one-token completion of ``model`` (or, without a
    model, ``GET url/models``) with 200; returns the seconds waited.

    Raises:
        TimeoutError: not ready after ``timeout_s``.
        RuntimeError: ``proc`` exited first.
    """
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() - start < timeout_s:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if model is None:
                ok = httpx.get(f"{url}/models", headers=headers, timeout=10).status_code == 200
            else:
                ok = httpx.post(f"{url}/completions", headers=headers, timeout=30, json={
                    "model": model, "prompt": "Hi", "max_tokens": 1}).status_code == 200
            if ok:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


@contextmanager
def vllm_server(model_path: Path, adapters: dict[str, Path]) -> Iterator[Peer]:
    """vLLM's own OpenAI server as a subprocess, with ``adapters`` as ``--lora-modules``."""
    port = free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model",
            str(model_path), "--served-model-name", MODEL, "--port", str(port),
            "--host", "127.0.0.1", "--disable-log-stats", "--disable-uvicorn-access-log",
            "--enable-lora", "--seed", "0"]
    for key, value in ENGINE.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    if adapters:
        argv += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": KV_GIB}
    log_path = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "server.log"
    url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_ready(url, "none", 900, proc)
            yield Peer("vllm", url, "none", MODEL, list(adapters))
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see {log_path}") from exc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def deploy(app, name: str, route_prefix: str, timeout_s: float = 900) -> float:
    """``serve.run`` with a deadline (it has none); returns the seconds it took.

    Raises:
        TimeoutError: not running after ``timeout_s``.
    """
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout

    from ray import serve

    start = time.monotonic()
    pool = ThreadPoolExecutor(1)
    try:
        pool.submit(serve.run, app, name=name, route_prefix=route_prefix).result(timeout_s)
    except FutureTimeout:
        raise TimeoutError(f"{name} not running after {timeout_s} s") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return time.monotonic() - start


@dataclass
class OurCluster:
    """The bench's Ray cluster with Serve: the catalog, a user's key, the Serve URL."""

    serve_url: str
    catalog: object  # catalog.actor.Catalog
    user_key: str
    base_id: str


@contextmanager
def our_cluster(home: Path, model_path: Path) -> Iterator[OurCluster]:
    """A local Ray cluster (8 logical CPUs) with Serve on a free port and a fresh catalog
    under ``home``: SmolLM2 registered as a base model and a user with an API key."""
    import ray
    from ray import serve

    from catalog import schemas as s
    from catalog.actor import Catalog, get_catalog

    home.mkdir(parents=True, exist_ok=True)
    os.environ["GARDEN_HOME"] = str(home)
    os.environ["GARDEN_ADMIN_KEY"] = ADMIN_KEY  # inherited by the cluster's replicas
    ray.init(address="local", num_cpus=8, include_dashboard=False, namespace="garden",
             runtime_env={"env_vars": {"GARDEN_HOME": str(home)}}, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        cat = Catalog(get_catalog(f"sqlite:///{home / 'catalog.db'}"))
        base = cat.register_model(s.ModelCreate(name=MODEL, kind="base", path=str(model_path)))
        _, secret = cat.create_api_key(f"bench-{uuid.uuid4().hex[:6]}", "bench")
        yield OurCluster(f"http://127.0.0.1:{port}", cat, secret, base.id)
    finally:
        serve.shutdown()
        ray.shutdown()


#: Extra environment of our replicas (``--replica-env``: try a Serve or vLLM setting).
REPLICA_ENV: dict[str, str] = {}


def llm_config(model_id: str, route_prefix: str):
    """Our :class:`LLMAppConfig` for ``model_id`` with the shared engine arguments."""
    from serve_apps.llm import LLMAppConfig

    env = {"VLLM_CPU_KVCACHE_SPACE": KV_GIB, **REPLICA_ENV}
    return LLMAppConfig(
        model=model_id, route_prefix=route_prefix,
        engine_args=dict(ENGINE),
        deployment={"max_adapters_per_replica": 16, "ray_actor_options": {
            "num_cpus": 1, "runtime_env": {"env_vars": env}}},
    )


def deploy_ours(cluster: OurCluster, adapters: dict[str, Path], name: str = "llm",
                model_id: str | None = None, route_prefix: str = "/openai",
                served_name: str = MODEL) -> Peer:
    """Register ``adapters`` in the catalog and deploy our LLM app for ``model_id``
    (default the base, whose served name is ``served_name``) as app ``name``."""
    from catalog import schemas as s
    from serve_apps.llm import build_llm_app

    cat = cluster.catalog
    served = []
    for adapter_name, path in adapters.items():
        model = cat.register_model(s.ModelCreate(
            name=adapter_name, kind="adapter", path=str(path), base_model_id=cluster.base_id))
        served.append(model.id)
    deploy(build_llm_app(llm_config(model_id or cluster.base_id, route_prefix)), name,
           route_prefix)
    url = f"{cluster.serve_url}{route_prefix}/v1"
    wait_ready(url, cluster.user_key, 120)
    return Peer("ours", url, cluster.user_key, served_name, served)


def deploy_ray_serve_llm(cluster: OurCluster, model_path: Path) -> Peer:
    """Ray Serve LLM's ``build_openai_app`` with the same engine arguments, LoRA enabled
    too (on CPU an engine with LoRA enabled answers base-model requests about a third
    slower than one without, so leaving it off would not compare like with like). No
    adapters are registered: it loads them from a ``dynamic_lora_loading_path`` store,
    not from local folders."""
    from ray.serve.llm import LLMConfig, build_openai_app

    config = LLMConfig(
        model_loading_config={"model_id": MODEL, "model_source": str(model_path)},
        engine_kwargs=ENGINE | {"enable_lora": True},
        deployment_config={"num_replicas": 1, "ray_actor_options": {"num_cpus": 1}},
        runtime_env={"env_vars": {"VLLM_CPU_KVCACHE_SPACE": KV_GIB}},
        accelerator_config={"kind": "cpu"},
    )
    deploy(build_openai_app({"llm_configs": [config]}), "rayllm", "/rayllm")
    url = f"{cluster.serve_url}/rayllm/v1"
    wait_ready(url, cluster.user_key, 120)
    return Peer("ray-serve-llm", url, cluster.user_key, MODEL)


# ----------------------------------------------------------------------------- load


@dataclass
class Level:
    """One level's result on one peer: latencies (s) and output tokens/s over the wall."""

    p50: float
    p95: float
    tokens_per_s: float


async def drive(peer: Peer, concurrency: int, requests: int, max_tokens: int,
                prompts: Sequence[str], models: Sequence[str]) -> Level:
    """Send ``requests`` completions, ``concurrency`` at a time, with the official
    ``openai`` async client; request ``i`` sends ``prompts[i % len]`` to
    ``models[i % len]`` and asks for exactly ``max_tokens`` tokens."""
    import openai

    client = openai.AsyncOpenAI(base_url=peer.url, api_key=peer.key, timeout=900,
                                max_retries=0)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0

    async def one(i: int) -> None:
        nonlocal tokens
        async with gate:
            t0 = time.perf_counter()
            out = await client.completions.create(
                model=models[i % len(models)], prompt=prompts[i % len(prompts)],
                max_tokens=max_tokens, temperature=0, extra_body={"ignore_eos": True},
            )
            latencies.append(time.perf_counter() - t0)
            assert out.usage is not None
            tokens += out.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - start
    await client.close()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return Level(statistics.median(latencies), p95, tokens / wall)


def alternate(peers: Sequence[Peer], cases: Sequence[str], rounds: int,
              run: Callable[[Peer, str], Level]) -> dict[tuple[str, str], list[Level]]:
    """Run every (case, peer) once per round, peers alternating within each case and the
    peer order rotating every round. Returns ``{(peer name, case): [Level per round]}``."""
    out: dict[tuple[str, str], list[Level]] = {}
    for r in range(rounds):
        for case in cases:
            order = list(peers[r % len(peers):]) + list(peers[:r % len(peers)])
            for peer in order:
                level = run(peer, case)
                out.setdefault((peer.name, case), []).append(level)
                print(f"  round {r + 1} {case:>14} {peer.name:>14}: p50 {level.p50:6.2f} s "
                      f"p95 {level.p95:6.2f} s {level.tokens_per_s:7.1f} tok/s", flush=True)
    return out


def spread(values: Sequence[float]) -> str:
    """``median [min-max]`` of per-round values."""
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def ratios(ours: Sequence[Level], theirs: Sequence[Level]) -> tuple[list[float], list[float]]:
    """Per-round (tokens/s ratio ours/theirs, p50 ratio ours/theirs)."""
    return ([o.tokens_per_s / t.tokens_per_s for o, t in zip(ours, theirs, strict=True)],
            [o.p50 / t.p50 for o, t in zip(ours, theirs, strict=True)])


# ----------------------------------------------------------------------------- parts


def part_latency(peers: Sequence[Peer], levels: Sequence[int], rounds: int,
                 max_tokens: int, kinds: Sequence[str] = ("fixed", "mixed")) -> None:
    """Part 1: every peer at each level with the prompt sets ``kinds`` (fixed, mixed);
    prints the table."""
    from rich.console import Console
    from rich.table import Table

    prompt_sets = {k: v for k, v in {"fixed": [PROMPT], "mixed": mixed_prompts()}.items()
                   if k in kinds}
    cases = [f"{kind} c={c}" for kind in prompt_sets for c in levels]

    def run(peer: Peer, case: str) -> Level:
        kind, c = case.split(" c=")
        n = max(3 * int(c), 3)
        return asyncio.run(drive(peer, int(c), n, max_tokens, prompt_sets[kind], [peer.base]))

    print("part 1: latency and throughput", flush=True)
    results = alternate(peers, cases, rounds, run)
    table = Table(title=f"Serving: ours vs peers, median \\[min-max] over {rounds} rounds "
                  f"(SmolLM2-135M, {max_tokens} tokens a request)")
    for col in ("prompts, conc.", "server", "p50 s", "tok/s", "tok/s ours/peer (>=0.95)",
                "p50 ours/peer (<=1.10)"):
        table.add_column(col)
    for case in cases:
        ours = results[("ours", case)]
        for peer in peers:
            res = results[(peer.name, case)]
            row = [case, peer.name, spread([x.p50 for x in res]),
                   spread([x.tokens_per_s for x in res])]
            if peer.name == "ours":
                row += ["", ""]
            else:
                tps, p50 = ratios(ours, res)
                row += [spread(tps), spread(p50)]
            table.add_row(*row)
    Console(width=160).print(table)


def part_adapters(ours: Peer, vllm: Peer, rounds: int, max_tokens: int,
                  concurrency: int) -> None:
    """Part 2: traffic over 0 (base only), 1, 4 and 16 adapters on ours and vLLM's."""
    from rich.console import Console
    from rich.table import Table

    cases = [f"adapters={n}" for n in ADAPTER_COUNTS]

    def run(peer: Peer, case: str) -> Level:
        n = int(case.split("=")[1])
        models = peer.adapters[:n] if n else [peer.base]
        requests = max(3 * concurrency, 2 * n)
        return asyncio.run(drive(peer, concurrency, requests, max_tokens, [PROMPT], models))

    print(f"part 2: many adapters (c={concurrency})", flush=True)
    results = alternate([ours, vllm], cases, rounds, run)
    table = Table(title=f"Adapters: traffic spread uniformly, c={concurrency}, "
                  f"median \\[min-max] over {rounds} rounds")
    for col in ("adapters", "ours tok/s", "ours vs base-only", "vllm tok/s",
                "vllm vs base-only", "ours/vllm tok/s"):
        table.add_column(col)
    for case in cases:
        o, v = results[("ours", case)], results[("vllm", case)]
        o0, v0 = results[("ours", cases[0])], results[("vllm", cases[0])]
        table.add_row(
            case.split("=")[1] or "0", spread([x.tokens_per_s for x in o]),
            spread([a.tokens_per_s / b.tokens_per_s for a, b in zip(o, o0, strict=True)]),
            spread([x.tokens_per_s for x in v]),
            spread([a.tokens_per_s / b.tokens_per_s for a, b in zip(v, v0, strict=True)]),
            spread(ratios(o, v)[0]))
    Console(width=160).print(table)


def part_merged(cluster: OurCluster, ours: Peer, rounds: int, max_tokens: int,
                concurrency: int) -> None:
    """Part 3: merge the first adapter (a Ray-free call of the merge the route runs as a
    Ray task), deploy it as its own LLM app and compare base, adapter and merged."""
    from catalog import schemas as s
    from train_jobs.merge import merge_adapter

    cat = cluster.catalog
    adapter = cat.models.get(ours.adapters[0])
    t0 = time.monotonic()
    merged: s.Model = merge_adapter(cat, adapter)
    merge_s = time.monotonic() - t0
    t0 = time.monotonic()
    peer = replace(deploy_ours(cluster, {}, name="merged", model_id=merged.id,
                               route_prefix="/merged", served_name=merged.name), name="merged")
    deploy_s = time.monotonic() - t0
    print(f"part 3: merged adapter (merge {merge_s:.1f} s, deploy {deploy_s:.1f} s)",
          flush=True)
    base = Peer("base", ours.url, ours.key, ours.base)
    as_adapter = Peer("adapter", ours.url, ours.key, ours.adapters[0])
    results = alternate([base, as_adapter, peer], ["merged"], rounds, lambda p, _: asyncio.run(
        drive(p, concurrency, 3 * concurrency, max_tokens, [PROMPT], [p.base])))
    b = results[("base", "merged")]
    for name in ("adapter", "merged"):
        res = results[(name, "merged")]
        print(f"  {name:>8}: {spread([x.tokens_per_s for x in res])} tok/s = "
              f"{spread([a.tokens_per_s / c.tokens_per_s for a, c in zip(res, b, strict=True)])}"
              f" x base", flush=True)
    from ray import serve

    serve.delete("merged")


def part_restart(cluster: OurCluster, ours: Peer) -> float:
    """Part 4b: kill our engine replica's actor; seconds until a request is answered
    again (Serve's controller replaces the replica)."""
    import ray

    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::llm#")]
    t0 = time.monotonic()
    for actor in replicas:
        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
    time.sleep(1)
    wait_ready(ours.url, ours.key, 600, model=ours.base)
    return time.monotonic() - t0


def part_garden_up(model_path: Path) -> tuple[float, float]:
    """Part 4a: ``garden up`` on a fresh home whose catalog holds the base model, until
    the LLM app answers a completion. Returns (seconds of ``garden up`` itself, seconds
    from its start to the first answered completion)."""
    from catalog import schemas as s
    from catalog.store import CatalogStore

    home = Path(tempfile.mkdtemp(prefix="bench-up-"))
    store = CatalogStore.open(f"sqlite:///{home / 'catalog.db'}")
    store.register_model(s.ModelCreate(name=MODEL, kind="base", path=str(model_path)))
    ports = {"--ray-port": free_port(), "--dashboard-port": free_port(),
             "--http-port": free_port(), "--agent-port": free_port()}
    env = {**os.environ, "GARDEN_HOME": str(home), "GARDEN_ADMIN_KEY": ADMIN_KEY}
    env.pop("GARDEN_DATABASE_URL", None)
    garden = str(Path(sys.executable).parent / "garden")
    argv = [garden, "up", "--llm-model", MODEL, "--no-media"]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    t0 = time.monotonic()
    try:
        subprocess.run(argv, env=env, check=True, timeout=900, capture_output=True)
        up_s = time.monotonic() - t0
        url = f"http://127.0.0.1:{ports['--http-port']}/openai/v1"
        wait_ready(url, ADMIN_KEY, 300, model=MODEL)
        return up_s, time.monotonic() - t0
    finally:
        subprocess.run([garden, "down"], env=env, check=False, timeout=120,
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


# ----------------------------------------------------------------------------- main


def make_adapters(model_path: Path, out: Path, n: int) -> dict[str, Path]:
    """``n`` PEFT LoRA adapters of the base (r=8 on q/v, random non-zero B, seeds 0..n-1),
    saved with ``save_pretrained`` under ``out``; ``{name: folder}``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapters = {}
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    for i in range(n):
        torch.manual_seed(i)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.05)
        folder = out / f"bench-lora-{i}"
        peft_model.save_pretrained(folder)
        adapters[f"bench-lora-{i}"] = folder
    return adapters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (at least 3)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per request")
    parser.add_argument("--adapter-concurrency", type=int, default=8)
    parser.add_argument("--prompts", default="fixed,mixed", help="prompt sets of part 1")
    parser.add_argument("--replica-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment variable of our replicas (repeatable)")
    for part in ("ray-llm", "adapters", "merged", "cold-start"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    levels = [int(x) for x in args.levels.split(",")]
    REPLICA_ENV.update(item.split("=", 1) for item in args.replica_env)

    from train_jobs.base_models import convert_gguf, smollm2_gguf

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    model_path = convert_gguf(smollm2_gguf(), work / MODEL)
    adapters = make_adapters(model_path, work / "adapters", max(ADAPTER_COUNTS))
    if not args.skip_cold_start:
        up_s, ready_s = part_garden_up(model_path)
        print(f"cold start: garden up returned after {up_s:.1f} s; LLM app answered "
              f"{ready_s:.1f} s after the start (target <= 60 s)", flush=True)
    with ExitStack() as stack:
        print("starting the peers", flush=True)
        vllm = stack.enter_context(vllm_server(model_path, adapters))
        cluster = stack.enter_context(our_cluster(work / "ours", model_path))
        ours = deploy_ours(cluster, adapters)
        peers = [ours, vllm]
        if not args.skip_ray_llm:
            try:
                peers.append(deploy_ray_serve_llm(cluster, model_path))
            except Exception as exc:  # a peer that cannot run is reported, not fatal
                print(f"  ray-serve-llm did not run: {type(exc).__name__}: {exc}", flush=True)
        for peer in peers:  # warm-up: compile paths, load one adapter
            asyncio.run(drive(peer, 2, 2, 8, [PROMPT], [peer.base]))
        part_latency(peers, levels, args.rounds, args.max_tokens, args.prompts.split(","))
        if not args.skip_adapters:
            part_adapters(ours, vllm, args.rounds, args.max_tokens, args.adapter_concurrency)
        if not args.skip_merged:
            part_merged(cluster, ours, args.rounds, args.max_tokens,
                        args.adapter_concurrency)
        if not args.skip_cold_start:
            restart_s = part_restart(cluster, ours)
            print(f"cold start: engine replica killed -> answering again in {restart_s:.1f} s "
                  "(target <= 60 s)", flush=True)


if __name__ == "__main__":
    main()

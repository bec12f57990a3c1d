"""Latency and throughput of our LLM endpoint vs vLLM's own OpenAI server (and Ray Serve LLM).

Same machine, same model (SmolLM2-135M-Instruct), same engine arguments. Each
server is started alone (one engine at a time), warmed up, then driven by the
official ``openai`` async client at 1, 8 and 32 concurrent requests; every
request asks for exactly ``--max-tokens`` tokens (``ignore_eos``) so the servers
do the same work. Prints p50/p95 latency (s), output tokens/s, and the ratios
ours/theirs (targets: throughput >= 0.95x, p50 <= 1.10x).

Run: ``python -m bench.serve_latency`` (about 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx

MODEL = "SmolLM2-135M-Instruct"
PROMPT = "Write a short story about a robot who learns to paint."
ENGINE = {"max_model_len": 1024, "dtype": "float32", "max_num_seqs": 32}

#: API key of our endpoint (vLLM's own server and Ray Serve LLM ignore it).
BENCH_KEY = "gk_bench_" + uuid.uuid4().hex


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url/models`` (with the bench's API key: our routes need one) until it answers
    200; raise TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            headers = {"Authorization": f"Bearer {BENCH_KEY}"}
            if httpx.get(f"{url}/models", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


@contextmanager
def vllm_server(model_path: Path):
    """vLLM's own OpenAI server as a subprocess; yields (base_url, model name)."""
    port = free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model",
            str(model_path), "--served-model-name", MODEL, "--port", str(port),
            "--host", "127.0.0.1", "--disable-log-stats"]
    for key, value in ENGINE.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    argv += ["--enable-lora", "--max-lora-rank", "16", "--max-loras", "4", "--seed", "0"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    log_path = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "server.log"
    url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_ready(url, 600, proc)
            yield url, MODEL
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see {log_path}") from exc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def deploy(app, name: str, route_prefix: str, timeout_s: float = 900) -> None:
    """``serve.run`` with a deadline (it has none): raise TimeoutError after ``timeout_s``."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout

    from ray import serve

    pool = ThreadPoolExecutor(1)
    try:
        pool.submit(serve.run, app, name=name, route_prefix=route_prefix).result(timeout_s)
    except FutureTimeout:
        raise TimeoutError(f"{name} not running after {timeout_s} s") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@contextmanager
def ray_serve(home: Path):
    """A local Ray cluster with Serve on a free port; yields the Serve base URL."""
    import ray
    from ray import serve

    home.mkdir(parents=True, exist_ok=True)
    os.environ["GARDEN_HOME"] = str(home)
    os.environ["GARDEN_ADMIN_KEY"] = BENCH_KEY  # inherited by the cluster's replicas
    ray.init(address="local", num_cpus=8, include_dashboard=False, namespace="garden",
             runtime_env={"env_vars": {"GARDEN_HOME": str(home)}}, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


@contextmanager
def our_server(model_path: Path, home: Path):
    """Our app (serve_apps.llm) on a fresh Ray cluster and catalog; yields (url, model)."""
    from catalog import schemas as s
    from catalog.actor import Catalog, get_catalog
    from serve_apps.llm import LLMAppConfig, build_llm_app

    with ray_serve(home) as base_url:
        cat = Catalog(get_catalog(f"sqlite:///{home / 'catalog.db'}"))
        base = cat.register_model(s.ModelCreate(name=MODEL, kind="base", path=str(model_path)))
        config = LLMAppConfig(
            model=base.id, engine_args=ENGINE | {"max_loras": 4},
            deployment={"ray_actor_options": {"num_cpus": 1, "runtime_env": {
                "env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}}}},
        )
        deploy(build_llm_app(config), "llm", "/openai")
        url = f"{base_url}/openai/v1"
        wait_ready(url, 60)
        yield url, MODEL


@contextmanager
def ray_serve_llm(model_path: Path, home: Path):
    """Ray Serve LLM's ``build_openai_app`` with the same engine; yields (url, model)."""
    from ray.serve.llm import LLMConfig, build_openai_app

    with ray_serve(home) as base_url:
        config = LLMConfig(
            model_loading_config={"model_id": MODEL, "model_source": str(model_path)},
            engine_kwargs=ENGINE | {"enable_lora": True, "max_lora_rank": 16},
            deployment_config={"num_replicas": 1, "ray_actor_options": {"num_cpus": 1}},
            runtime_env={"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}},
            accelerator_config={"kind": "cpu"},
        )
        deploy(build_openai_app({"llm_configs": [config]}), "rayllm", "/rayllm")
        url = f"{base_url}/rayllm/v1"
        wait_ready(url, 60)
        yield url, MODEL


async def drive(url: str, model: str, concurrency: int, requests: int, max_tokens: int):
    """Send ``requests`` completions, ``concurrency`` at a time.

    Returns (p50 s, p95 s, output tokens/s over the wall time).
    """
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key=BENCH_KEY, timeout=600, max_retries=0)
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0

    async def one() -> None:
        nonlocal tokens
        async with sem:
            t0 = time.perf_counter()
            out = await client.completions.create(
                model=model, prompt=PROMPT, max_tokens=max_tokens, temperature=0,
                extra_body={"ignore_eos": True},
            )
            latencies.append(time.perf_counter() - t0)
            tokens += out.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    wall = time.perf_counter() - start
    await client.close()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return statistics.median(latencies), p95, tokens / wall


def measure(server: Callable[[], AbstractContextManager], levels, max_tokens: int) -> dict:
    """Start ``server``, warm it up, run each concurrency level; {level: (p50, p95, tok/s)}."""
    results = {}
    with server() as (url, model):
        asyncio.run(drive(url, model, 2, 2, 8))  # warm-up
        for level in levels:
            results[level] = asyncio.run(drive(url, model, level, max(2 * level, 4), max_tokens))
            print(f"  c={level}: p50 {results[level][0]:.2f}s p95 {results[level][1]:.2f}s "
                  f"{results[level][2]:.1f} tok/s", flush=True)
    return results


def report(ours: dict, peers: dict[str, dict]) -> None:
    """Print the comparison table with ratios ours/peer."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="LLM serving: ours vs peers (SmolLM2-135M, same engine args)")
    for col in ("server", "conc.", "p50 s", "p95 s", "tok/s", "tok/s ratio (>=0.95)",
                "p50 ratio (<=1.10)"):
        table.add_column(col)
    for level, (p50, p95, tps) in ours.items():
        table.add_row("ours", str(level), f"{p50:.2f}", f"{p95:.2f}", f"{tps:.1f}", "", "")
    for name, res in peers.items():
        for level, (p50, p95, tps) in res.items():
            o50, _, otps = ours[level]
            table.add_row(name, str(level), f"{p50:.2f}", f"{p95:.2f}", f"{tps:.1f}",
                          f"{otps / tps:.2f}", f"{o50 / p50:.2f}")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per request")
    parser.add_argument("--skip-ray-llm", action="store_true", help="skip Ray Serve LLM")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from train_jobs.base_models import convert_gguf, smollm2_gguf

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    model_path = convert_gguf(smollm2_gguf(), work / MODEL)
    servers = {
        "ours": lambda: our_server(model_path, work / "ours"),
        "vllm": lambda: vllm_server(model_path),
        "ray-serve-llm": lambda: ray_serve_llm(model_path, work / "rayllm"),
    }
    if args.skip_ray_llm:
        del servers["ray-serve-llm"]
    results = {}
    for name, server in servers.items():
        print(name, flush=True)
        try:
            results[name] = measure(server, levels, args.max_tokens)
        except (RuntimeError, TimeoutError, ValueError) as exc:
            if name == "ours":
                raise
            print(f"  {name} did not run: {exc}", flush=True)
    ours = results.pop("ours")
    report(ours, results)


if __name__ == "__main__":
    main()

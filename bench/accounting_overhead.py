"""Latency that per-request accounting adds: the same LLM app with accounting on and off.

Two apps run side by side on one Ray cluster with one catalog, same model
(SmolLM2-135M-Instruct) and engine arguments; they differ only in
``LLMAppConfig.accounting``. With it on, every request is admitted under its key's
limits, gets a usage record (user, key, tokens, energy, CO2) through the replica's
usage buffer, and answers ``carbon_emissions_g``; off, none of that. Requests are sent
with a user's catalog key (the real request path: key cache, limiter), one at a time,
alternating between the apps (A B A B ...), in rounds; each round prints both p50s and
their difference, and the end prints the median difference over rounds with its spread
(target of issue 13: at most 1 ms added at p50).

Run: ``python -m bench.accounting_overhead`` (about 4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.serve_latency import ENGINE, MODEL, deploy, ray_serve, wait_ready

PROMPT = "Say hello."


def p50(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of requests")
    parser.add_argument("--requests", type=int, default=100,
                        help="requests per app per round (alternating)")
    parser.add_argument("--max-tokens", type=int, default=1, help="tokens per request")
    args = parser.parse_args()

    from catalog import schemas as s
    from catalog.actor import Catalog, get_catalog
    from serve_apps.llm import LLMAppConfig, build_llm_app
    from train_jobs.base_models import convert_gguf, smollm2_gguf

    work = Path(tempfile.mkdtemp(prefix="bench-accounting-"))
    model_path = convert_gguf(smollm2_gguf(), work / MODEL)
    with ray_serve(work / "home") as base_url:
        cat = Catalog(get_catalog(f"sqlite:///{work / 'catalog.db'}"))
        base = cat.register_model(s.ModelCreate(name=MODEL, kind="base", path=str(model_path)))
        _, secret = cat.create_api_key("bench-user", "accounting bench")
        urls = {}
        for name, accounting in (("on", True), ("off", False)):
            config = LLMAppConfig(
                model=base.id, engine_args=ENGINE, accounting=accounting,
                route_prefix=f"/acct-{name}",
                deployment={"ray_actor_options": {"num_cpus": 1, "runtime_env": {
                    "env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}}}},
            )
            deploy(build_llm_app(config), f"acct-{name}", config.route_prefix)
            urls[name] = f"{base_url}{config.route_prefix}/v1"
            wait_ready(urls[name], 60)
        body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": args.max_tokens, "temperature": 0}
        with httpx.Client(headers={"Authorization": f"Bearer {secret}"}, timeout=120) as http:
            for url in urls.values():  # warm-up: engines, key cache, model cache
                for _ in range(5):
                    http.post(f"{url}/chat/completions", json=body).raise_for_status()
            diffs = []
            print("round  p50 on (ms)  p50 off (ms)  added (ms)", flush=True)
            for rnd in range(args.rounds):
                times: dict[str, list[float]] = {"on": [], "off": []}
                order = ("on", "off") if rnd % 2 == 0 else ("off", "on")
                for _ in range(args.requests):
                    for name in order:
                        t0 = time.perf_counter()
                        r = http.post(f"{urls[name]}/chat/completions", json=body)
                        times[name].append((time.perf_counter() - t0) * 1000)
                        r.raise_for_status()
                on, off = p50(times["on"]), p50(times["off"])
                diffs.append(on - off)
                print(f"{rnd:5d}  {on:11.2f}  {off:12.2f}  {on - off:10.2f}", flush=True)
        spread = (min(diffs), max(diffs))
        print(f"accounting adds {statistics.median(diffs):.2f} ms at p50 (median of "
              f"{len(diffs)} rounds; spread {spread[0]:.2f} .. {spread[1]:.2f} ms; "
              f"target <= 1 ms)", flush=True)


if __name__ == "__main__":
    main()

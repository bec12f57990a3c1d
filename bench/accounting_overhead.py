"""Latency that per-request accounting adds: the same LLM app with accounting on and off.

Two apps run side by side on one Ray cluster with one catalog, same model
(SmolLM2-135M-Instruct) and engine arguments; they differ only in
``LLMAppConfig.accounting``. With it on, every request is admitted under its key's
limits, gets a usage record (user, key, tokens, energy, CO2) through the replica's
usage buffer (journaled on the node's disk first), and answers ``carbon_emissions_g``;
off, none of that. ``--peer no-journal`` compares instead accounting with the usage
journal against accounting without it (``LLMAppConfig.usage_journal``): what the journal
adds (issue 37's target: at most 0.2 ms at p50). Requests are sent
with a user's catalog key (the real request path: key cache, limiter), one at a time,
alternating between the apps (A B A B ...), in rounds; each round prints both p50s and
their difference, and the end prints the median difference over rounds with its spread
(target of issue 13: at most 1 ms added at p50).
A micro-benchmark of the journal's own append (``--peer no-journal`` only) prints its
per-record cost in microseconds on this machine's disk.

The app deployed first measured slower in A/A runs (``--peer same``: +0.39 ms at p50
deployed first, -0.16 ms deployed second, 2 cores): run each comparison in both orders
(``--peer-first``) and read the mean of the two medians against the A/A pair's mean.

Run: ``python -m bench.accounting_overhead`` (about 4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.serve_latency import MODEL, deploy, llm_config, our_cluster, wait_ready

PROMPT = "Say hello."


def p50(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of requests")
    parser.add_argument("--requests", type=int, default=100,
                        help="requests per app per round (alternating)")
    parser.add_argument("--max-tokens", type=int, default=1, help="tokens per request")
    parser.add_argument("--peer", choices=("off", "no-journal", "same"), default="off",
                        help="what the app with accounting (and its journal) is compared "
                        "with: accounting off, accounting without the usage journal, or "
                        "the same app again (an A/A control: what two identical apps "
                        "differ by on this machine)")
    parser.add_argument("--peer-first", action="store_true",
                        help="deploy the peer before the app with accounting (the app "
                        "deployed first measured 0.39 ms slower in an A/A run: run both "
                        "orders and average)")
    args = parser.parse_args()
    if args.peer == "no-journal":
        journal_append_us(Path(tempfile.mkdtemp(prefix="bench-journal-")))

    from serve_apps.llm import build_llm_app
    from train_jobs.base_models import convert_gguf, smollm2_gguf

    work = Path(tempfile.mkdtemp(prefix="bench-accounting-"))
    model_path = convert_gguf(smollm2_gguf(), work / MODEL)
    with our_cluster(work / "home", model_path) as cluster:
        secret = cluster.user_key
        urls = {}
        peer = {"off": {"accounting": False}, "no-journal": {"usage_journal": False},
                "same": {}}[args.peer]
        apps = [("on", {}), ("off", peer)]
        for name, options in reversed(apps) if args.peer_first else apps:
            config = llm_config(cluster.base_id, f"/acct-{name}").model_copy(update=options)
            deploy(build_llm_app(config), f"acct-{name}", config.route_prefix)
            urls[name] = f"{cluster.serve_url}{config.route_prefix}/v1"
            wait_ready(urls[name], secret, 120)
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
        what, target = {"off": ("accounting", 1.0), "no-journal": ("the usage journal", 0.2),
                        "same": ("nothing (A/A control)", 0.0)}[args.peer]
        print(f"{what} adds {statistics.median(diffs):.2f} ms at p50 (median of "
              f"{len(diffs)} rounds; spread {spread[0]:.2f} .. {spread[1]:.2f} ms; "
              f"target <= {target} ms)", flush=True)


def journal_append_us(folder: Path, records: int = 20_000, rounds: int = 5) -> None:
    """Print the journal's cost per record (append: serialise, write, flush; then
    settle), median of ``rounds`` runs of ``records`` records, in microseconds."""
    from datetime import UTC, datetime

    from catalog import schemas as s
    from catalog.usage_journal import UsageJournal

    journal = UsageJournal(folder)
    costs = []
    for rnd in range(rounds):
        batch = [s.UsageCreate(id=f"use_{rnd}_{i:08d}", kind="llm", model=MODEL,
                               user_id="bench-user", api_key_id="key_0123456789abcdef",
                               prompt_tokens=25, completion_tokens=1, latency_ms=80.0,
                               ttft_ms=80.0, energy_kwh=1e-6, emissions_kg=5e-8,
                               created_at=datetime.now(UTC),
                               details={"route": "chat", "status": 200, "stream": False})
                 for i in range(records)]
        t0 = time.perf_counter()
        for record in batch:
            journal.append(record)
        journal.settle(record.id for record in batch)
        costs.append((time.perf_counter() - t0) / records * 1e6)
    journal.close()
    print(f"journal append + settle: {statistics.median(costs):.1f} us per record (median "
          f"of {rounds} x {records}; spread {min(costs):.1f} .. {max(costs):.1f} us)",
          flush=True)


if __name__ == "__main__":
    main()

"""Media router benchmark against local servers that follow the providers' APIs.

1. Latency: ``POST /v1/images/generations`` through the router (catalog rows, provider
   call, output copied into storage) versus the peer, the ``openai`` client calling the
   same local OpenAI Images server directly and downloading the image it names. Printed
   per simulated provider latency (the local server answers after that many seconds):
   median and p95 of each, the ratio of medians (target <= 1.10x) and the absolute
   overhead in milliseconds.
2. Throughput: N concurrent Replicate predictions (default 500) submitted at once and
   tracked to completion by polling; then the catalog is checked: every prediction
   succeeded, every image row has its stored file, every file is on disk with its size.

``--serve`` runs both through the real Ray Serve app over HTTP (ingress, DeploymentHandle,
MediaRouter replica, catalog actor); the default drives :class:`MediaService`
in-process on a SQLite catalog. Run: ``python -m bench.media_router [--serve]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import openai

from catalog.port import AsyncLocalCatalog
from catalog.store import CatalogStore
from serve_apps.auth import Principal
from serve_apps.media.config import PROVIDER_ENV, MediaConfig, ProviderSettings
from serve_apps.media.schemas import ImageGenerationRequest
from serve_apps.media.service import MediaService
from tests.serve_apps.media.fakes import openai_api, replicate_api

USER = Principal("bench", "admin")


def _config(openai_url: str, replicate_url: str, media_dir: Path,
            webhook_url: str | None = None) -> MediaConfig:
    providers = {
        "openai": ProviderSettings(base_url=openai_url + "/v1", token="sk-openai-test",
                                   token_env=PROVIDER_ENV["openai"][0]),
        "replicate": ProviderSettings(base_url=replicate_url, token="r8_test_token",
                                      token_env=PROVIDER_ENV["replicate"][0]),
    }
    return MediaConfig(providers=providers, media_dir=media_dir, poll_interval_s=1.0,
                       job_timeout_s=300, webhook_url=webhook_url)


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


async def _direct(openai_url: str, n: int) -> list[float]:
    """The peer: the openai client straight to the server, then fetch the image."""
    client = openai.AsyncOpenAI(api_key="sk-openai-test", base_url=openai_url + "/v1",
                                max_retries=0)
    times = []
    async with httpx.AsyncClient(timeout=60) as http:
        for i in range(n):
            start = time.perf_counter()
            result = await client.images.generate(prompt=f"a lamp {i}", model="dall-e-3",
                                                  n=1, size="1024x1024",
                                                  response_format="url")
            (await http.get(result.data[0].url)).raise_for_status()
            times.append(time.perf_counter() - start)
    await client.close()
    return times


async def _via_service(service: MediaService, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        result = await service.generate_image(ImageGenerationRequest(
            prompt=f"a lamp {i}", provider="openai", size="1024x1024"), USER)
        if result.prediction.status != "succeeded":
            raise RuntimeError(f"router failed: {result.prediction.error_message}")
        times.append(time.perf_counter() - start)
    return times


async def _via_http(url: str, key: str, n: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        for i in range(n):
            start = time.perf_counter()
            r = await http.post("/v1/images/generations", json={
                "prompt": f"a lamp {i}", "provider": "openai", "size": "1024x1024"})
            if r.status_code != 201 or r.json()["prediction"]["status"] != "succeeded":
                raise RuntimeError(f"router failed: {r.status_code} {r.text[:300]}")
            times.append(time.perf_counter() - start)
    return times


def _check_rows(store: CatalogStore, ids: list[str]) -> str:
    """Every prediction succeeded with its stored file on disk; returns a summary line."""
    bad = 0
    reasons: Counter = Counter()
    for image_id in ids:
        image = store.images.get(image_id)
        pred = store.predictions.get(image.prediction_id)
        ok = (pred.status == "succeeded" and image.files and pred.files == image.files
              and Path(image.files[0].path).stat().st_size == image.files[0].size_bytes
              and image.files[0].mime_type == "image/png" and pred.duration_s is not None)
        if not ok:
            bad += 1
            reasons[f"{pred.status}: {(pred.error_message or 'files missing')[:80]}"] += 1
    line = f"{len(ids) - bad}/{len(ids)} predictions succeeded with stored files checked"
    if reasons:
        line += "; others: " + "; ".join(f"{n}x {r}" for r, n in reasons.most_common(3))
    return line


async def _throughput_service(service: MediaService, n: int) -> tuple[list[str], float]:
    start = time.perf_counter()
    results = await asyncio.gather(*[
        service.generate_image(ImageGenerationRequest(prompt=f"dune {i}",
                                                      provider="replicate"), USER)
        for i in range(n)])
    await asyncio.gather(*[service.wait(r.prediction.id, timeout_s=600) for r in results])
    return [r.image.id for r in results], time.perf_counter() - start


async def _throughput_http(url: str, key: str, n: int) -> tuple[list[str], float]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        start = time.perf_counter()
        posts = await asyncio.gather(*[http.post("/v1/images/generations", json={
            "prompt": f"dune {i}", "provider": "replicate"}) for i in range(n)])
        ids = [r.json()["image"]["id"] for r in posts if r.status_code == 201]
        if len(ids) != n:
            raise RuntimeError(f"{n - len(ids)} submissions failed: {posts[0].text[:300]}")
        pending = set(ids)
        deadline = time.monotonic() + 600
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            for image_id in list(pending):
                body = (await http.get(f"/v1/images/{image_id}")).json()
                if body["prediction"]["status"] not in ("starting", "processing"):
                    pending.discard(image_id)
        if pending:
            raise TimeoutError(f"{len(pending)} predictions unfinished after 600 s")
        return ids, time.perf_counter() - start


def _print_latency(label: float, direct: list[float], routed: list[float]) -> None:
    d50, d95 = _summary(direct)
    r50, r95 = _summary(routed)
    print(f"  provider latency {label:4.2f}s | direct p50 {d50 * 1e3:7.1f} ms p95 "
          f"{d95 * 1e3:7.1f} | router p50 {r50 * 1e3:7.1f} ms p95 {r95 * 1e3:7.1f} | "
          f"ratio {r50 / d50:5.2f}x | overhead {(r50 - d50) * 1e3:6.1f} ms")


async def run_in_process(args, oa, rep, tmp: Path) -> None:
    store = CatalogStore.open(f"sqlite:///{tmp / 'catalog.db'}")
    rep.state.job_s = args.job_s
    service = MediaService(_config(oa.url, rep.url, tmp / "media"), AsyncLocalCatalog(store))
    print("latency: router (MediaService in-process, SQLite catalog) vs openai client direct")
    for latency in args.latencies:
        oa.state.latency_s = latency
        await _direct(oa.url, 3)  # warm both paths
        await _via_service(service, 3)
        _print_latency(latency, await _direct(oa.url, args.n), await _via_service(
            service, args.n))
    print(f"throughput: {args.concurrent} concurrent replicate predictions "
          f"(job {args.job_s}s, polled every 1 s)")
    ids, wall = await _throughput_service(service, args.concurrent)
    await service.close()  # writes (or spools) the buffered usage records
    print(f"  all tracked to completion in {wall:.1f} s; {_check_rows(store, ids)}")
    store.close()


async def run_serve(args, oa, rep, tmp: Path) -> None:
    import ray
    from ray import serve

    from catalog.actor import get_catalog
    from serve_apps.media import build_media_app

    key = "gk_bench_" + uuid.uuid4().hex
    db = f"sqlite:///{tmp / 'catalog.db'}"
    ray.init(address="local", num_cpus=8, include_dashboard=False, namespace="garden",
             log_to_driver=False, runtime_env={"env_vars": {"GARDEN_HOME": str(tmp)}})
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/media-bench"
    try:
        get_catalog(db)
        rep.state.job_s = args.job_s
        config = _config(oa.url, rep.url, tmp / "media", webhook_url=url)
        serve.run(build_media_app(config, runtime_env={"env_vars": {"GARDEN_ADMIN_KEY": key}}),
                  name="media-bench", route_prefix="/media-bench")
        print("latency: router (HTTP -> Serve ingress -> MediaRouter -> catalog actor) vs "
              "openai client direct")
        for latency in args.latencies:
            oa.state.latency_s = latency
            await _direct(oa.url, 3)
            await _via_http(url, key, 3)
            _print_latency(latency, await _direct(oa.url, args.n),
                           await _via_http(url, key, args.n))
        print(f"throughput: {args.concurrent} concurrent replicate predictions over HTTP "
              f"(job {args.job_s}s, completed by signed webhooks)")
        ids, wall = await _throughput_http(url, key, args.concurrent)
        store = CatalogStore.open(db, migrate=False)
        print(f"  all tracked to completion in {wall:.1f} s; {_check_rows(store, ids)}")
        store.close()
    finally:
        serve.shutdown()
        ray.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="go through Ray Serve over HTTP")
    parser.add_argument("--n", type=int, default=30, help="sequential requests per latency")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.5],
                        help="simulated provider latencies, seconds")
    parser.add_argument("--concurrent", type=int, default=500)
    parser.add_argument("--job-s", type=float, default=1.0, help="replicate job duration")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} (1/5/15 min); timings scale with it")
    oa = openai_api.start()
    rep, _secret = replicate_api.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runner = run_serve if args.serve else run_in_process
            asyncio.run(runner(args, oa, rep, Path(tmp)))
    finally:
        oa.stop()
        rep.stop()


if __name__ == "__main__":
    main()

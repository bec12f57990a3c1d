"""Peak memory of registering a large CSV dataset: our streaming registration against
reading the whole file with the same library.

A ``--size-mb`` MB alpaca CSV (``instruction,input,output``; each answer about 900
characters, as long chat answers are) is written once. Then, in a fresh Python process
per measurement, after one small warm-up registration (imports and connection pools):

- **ours**: :func:`corpora.registration.register_dataset` of the file into a SQLite
  catalog (it validates every row, computes the statistics and writes the JSONL copy,
  reading the CSV as a stream of record batches);
- **peer**: ``pyarrow.csv.read_csv`` of the whole file into one table (the library our
  reader streams with, used the usual way), plus ``to_pylist()`` for ``--peer rows``
  (what a reader that builds every row in memory holds).

A figure is the process's peak resident memory growth during the step: Linux's
``VmHWM`` after the step minus the RSS before it, with the high-water mark reset just
before through ``/proc/self/clear_refs`` (``proc(5)``). The peers alternate, ``--rounds``
rounds; medians, spread and the ratio are printed. Target (README): our growth below a
third of the file's size (it was about 21 MiB for 100 MB).

    python -m bench.dataset_memory [--size-mb 100 --rounds 3 --peer table|rows]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

#: Our growth must stay under this fraction of the file's size (README).
TARGET_FRACTION = 1 / 3

_MEASURE = textwrap.dedent("""
    import json, os, sys
    import psutil

    def high_water_mark():  # this process's peak RSS since the last reset, bytes
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmHWM:"))

    def reset_peak():  # the peak becomes the current RSS (proc(5), /proc/pid/clear_refs)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")

    which, big, db_url, small, peer = sys.argv[1:6]
    if which == "ours":
        from catalog.store import CatalogStore
        from corpora.registration import register_dataset

        store = CatalogStore.open(db_url)
        register_dataset(store, small, "warm-up")
        reset_peak()
        before = psutil.Process().memory_info().rss
        ds = register_dataset(store, big, "big", filename="big.csv")
        rows = ds.num_rows
    else:
        import pyarrow.csv

        pyarrow.csv.read_csv(small)
        reset_peak()
        before = psutil.Process().memory_info().rss
        table = pyarrow.csv.read_csv(big)
        rows = len(table.to_pylist()) if peer == "rows" else table.num_rows
    print(json.dumps({"growth": high_water_mark() - before, "rows": rows}))
""")


def write_csv(path: Path, size_bytes: int) -> int:
    """An alpaca CSV of at least ``size_bytes``; returns its rows."""
    text = "y" * 900
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["instruction", "input", "output"])
        while fh.tell() < size_bytes:
            writer.writerows([f"question {j}", "", f"answer {j} {text}"]
                             for j in range(rows, rows + 1000))
            rows += 1000
    return rows


def measure(which: str, big: Path, small: Path, work: Path, peer: str, rnd: int) -> dict:
    """One measurement in a fresh process: ``{"growth": bytes, "rows": n}``."""
    env = {**os.environ, "GARDEN_HOME": str(work / f"home-{rnd}")}
    db_url = f"sqlite:///{work / f'catalog-{rnd}.db'}"
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, which, str(big), db_url, str(small), peer],
        capture_output=True, text=True, env=env, timeout=1200, check=False,
        cwd=Path(__file__).parents[1])
    if result.returncode != 0:
        raise SystemExit(f"{which} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer", choices=("table", "rows"), default="table")
    args = parser.parse_args()
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("needs Linux /proc (clear_refs and VmHWM)")

    work = Path(tempfile.mkdtemp(prefix="bench-dataset-memory-"))
    big, small = work / "big.csv", work / "small.csv"
    rows = write_csv(big, args.size_mb * 2**20)
    small.write_text("instruction,input,output\nSay hi,,Hello\n", encoding="utf-8")
    size = big.stat().st_size
    print(f"{size / 2**20:.0f} MiB CSV, {rows} rows; peer: pyarrow.csv.read_csv "
          f"({args.peer})", flush=True)
    growth: dict[str, list[float]] = {"ours": [], "peer": []}
    print("round  ours (MiB)  peer (MiB)  ratio", flush=True)
    for rnd in range(args.rounds):
        order = ("ours", "peer") if rnd % 2 == 0 else ("peer", "ours")
        got = {which: measure(which, big, small, work, args.peer, rnd) for which in order}
        for which, report in got.items():
            if report["rows"] != rows:
                raise SystemExit(f"{which} read {report['rows']} rows of {rows}")
            growth[which].append(report["growth"] / 2**20)
        print(f"{rnd:5d}  {growth['ours'][-1]:10.1f}  {growth['peer'][-1]:10.1f}  "
              f"{growth['ours'][-1] / growth['peer'][-1]:5.2f}", flush=True)
    ours, peer = statistics.median(growth["ours"]), statistics.median(growth["peer"])
    print(f"peak growth: ours {ours:.1f} MiB (spread {min(growth['ours']):.1f} .. "
          f"{max(growth['ours']):.1f}), peer {peer:.1f} MiB (spread "
          f"{min(growth['peer']):.1f} .. {max(growth['peer']):.1f}); ours / peer "
          f"{ours / peer:.2f}; ours / file size {ours * 2**20 / size:.3f} "
          f"(target < {TARGET_FRACTION:.2f})", flush=True)


if __name__ == "__main__":
    main()

"""Fraud at scale: wall time and peak memory of building the fraud use case on N simulated
transactions in Parquet and of the quick and standard scans of it, against the peer (reading the
same Parquet data whole with pandas, as an in-memory scan would, before any attack runs).

    python bench/bench_scale.py                          # 100k and 1M rows, quick profile
    python bench/bench_scale.py --rows 100000 1000000 --profiles quick standard
    python bench/bench_scale.py --with-10m               # adds 10M rows (about 140 MB Parquet)
    python bench/bench_scale.py --with-10m --profiles    # only build and read (no scan)

Each step runs as its own process (``finmlsec demo build fraud --rows N``, ``finmlsec scan
SPEC --profile P``, two local worker processes: the default executor); memory is sampled every
0.2 s over the whole process tree: ``tree peak`` is the largest sum of the processes' resident
sets (forked workers share pages with their parent, which this counts once per process: an upper
bound), ``largest`` the largest single process; ``CPU s`` the user + system time of the whole
tree (comparable across machine loads: on a shared machine wall time is inflated by the other
processes). Built data is reused from ``--workdir``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
FINMLSEC = [sys.executable, "-m", "finmlsec.cli.main"]


def measure(cmd: list[str], *, cwd: Path, log: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit code and peak memory (tree sum and largest process)."""
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"), COLUMNS="200")
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        tree_peak = largest = 0
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                rss = []
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        rss.append(p.memory_info().rss)
                tree_peak, largest = max(tree_peak, sum(rss)), max(largest, max(rss or [0]))
            except psutil.Error:
                pass
            time.sleep(0.2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"seconds": time.perf_counter() - t0, "code": proc.returncode, "cpu_seconds": cpu,
            "tree_peak_mb": tree_peak / 2**20, "largest_mb": largest / 2**20}


PEER = """
import sys, time, resource
import pandas as pd
from finmlsec.datasets.base import Dataset
from finmlsec.datasets.card_fraud import SCHEMA, CLASSES
from finmlsec.datasets.splits import split_three
t = time.perf_counter()
frame = pd.read_parquet(sys.argv[1])
y = (frame.pop("is_fraud") == "fraud").astype(int).to_numpy()
ds = Dataset(name="tx", X=frame, y=y, classes=CLASSES, schema=SCHEMA)
train, test, pop = split_three(ds, 0)
print(len(train), time.perf_counter() - t)
"""


OURS = """
import sys, time
from pathlib import Path
from finmlsec.datasets.card_fraud import SCHEMA
from finmlsec.datasets.splits import load_sampled
t = time.perf_counter()
_, train, test, pop = load_sampled(Path(sys.argv[1]), "is_fraud", SCHEMA, sample=50_000, seed=0)
print(len(train), len(test), len(pop), time.perf_counter() - t)
"""


def run(rows: list[int], profiles: list[str], workdir: Path, peer: bool) -> list[dict[str, Any]]:
    results = []
    for n in rows:
        d = workdir / f"fraud-{n}"
        if not (d / "spec.yaml").is_file():
            shutil.rmtree(d, ignore_errors=True)
            r = measure([*FINMLSEC, "demo", "build", "fraud", "--rows", str(n), "--out", str(d)],
                        cwd=workdir, log=workdir / f"build-{n}.log")
            results.append({"rows": n, "step": "build (simulate, write, train)", **r})
            print(table(results[-1:]), flush=True)
        if peer:
            r = measure([sys.executable, "-c", OURS, str(d / "transactions")], cwd=workdir,
                        log=workdir / f"read-{n}.log")
            results.append({"rows": n, "step": "ours: read in chunks + sample", **r})
            print(table(results[-1:]), flush=True)
            r = measure([sys.executable, "-c", PEER, str(d / "transactions")], cwd=workdir,
                        log=workdir / f"peer-{n}.log")
            results.append({"rows": n, "step": "peer: read whole + split (no scan)", **r})
            print(table(results[-1:]), flush=True)
        for prof in profiles:
            db = d / f"bench-{prof}.db"
            db.unlink(missing_ok=True)
            r = measure([*FINMLSEC, "scan", str(d / "spec.yaml"), "--profile", prof, "--db",
                         str(db), "--quiet", "--json"], cwd=workdir,
                        log=workdir / f"scan-{prof}-{n}.log")
            try:
                doc = json.loads((workdir / f"scan-{prof}-{n}.log").read_text())
                counts = doc["summary"]["counts"]
                r["units"] = f"{counts.get('done', 0)} done, {counts.get('error', 0)} error"
            except (ValueError, KeyError):
                r["units"] = "?"
            results.append({"rows": n, "step": f"scan --profile {prof}", **r})
            print(table(results[-1:]), flush=True)
    return results


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'rows':>11}  {'step':<36} {'wall s':>8} {'CPU s':>8} {'tree peak MB':>13} "
            f"{'largest MB':>11}  exit  units")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['rows']:>11,}  {r['step']:<36} {r['seconds']:>8.1f} "
                     f"{r['cpu_seconds']:>8.1f} "
                     f"{r['tree_peak_mb']:>13,.0f} {r['largest_mb']:>11,.0f}  {r['code']:>4}  "
                     f"{r.get('units', '')}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--with-10m", action="store_true", help="also 10,000,000 rows")
    ap.add_argument("--profiles", nargs="*", default=["quick"],
                    choices=["quick", "standard", "thorough"],
                    help="scan profiles to measure (none: only build and read)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/finmlsec-bench-scale"))
    ap.add_argument("--no-peer", action="store_true", help="skip the in-memory peer")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    rows = args.rows + ([10_000_000] if args.with_10m else [])
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"load before: {os.getloadavg()}; cores: {os.cpu_count()}", flush=True)
    results = run(rows, args.profiles, args.workdir, not args.no_peer)
    print("\nall steps:")
    print(table(results))
    print(f"load after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

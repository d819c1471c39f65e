"""A scan on a Dask cluster: measured speed-up on 1, 2, 4 workers and the bound for more.

The use case (``--case``, built with seed 0 by ``finmlsec demo build``) is scanned with the
profile (``--profile``, default standard; seed 0) on a local Dask cluster of N worker processes
of one thread each (``distributed.LocalCluster``, workers in a scratch directory), for each N of
``--workers``; the peer is the scan's own local process pool (``--executor process``) with as
many workers as cores. Every scan of a case must give the same results (checked: the units' outcomes without
their timings).

From the task graph the scan records (per unit its wall time and the CPU time of its thread and,
for each ``task_map`` of its independent pieces, each piece's wall and CPU time:
``outcome["pieces"]``), measured on the one-worker run: ``W`` the total work (every unit's own
time plus its pieces) and ``D`` the critical path (units are independent of each other, so the
longest unit: its own time plus, per map, its longest piece). On p workers a greedy scheduler
needs at least ``max(W/p, D)`` and at most ``W/p + D`` (Brent's bound); the table gives both, in
CPU seconds (what the work costs on cores of its own, whatever the load of this shared machine),
for the measured N and for 16 and 64. The bounds ignore scheduling and transfer overheads (a few
milliseconds a task) and assume the work does not grow with p (each worker loads the scenario
once: the load is in the time of the first unit a worker runs).

Usage: python bench/bench_dask.py [--case credit-scoring] [--profile standard]
       [--workers 1,2,4] [--peer] [--work DIR] [--as-deployed]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "results" / "dask"  # (git-ignored)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def comparable(units: list[Any]) -> dict[str, Any]:
    out = {}
    for u in units:
        o = {k: v for k, v in (u.outcome or {}).items() if k not in ("seconds", "worker",
                                                                        "pieces", "cpu_seconds")}
        if o.get("result"):
            r = {k: v for k, v in o["result"].items() if k != "seconds"}
            r["metrics"] = {k: v for k, v in r["metrics"].items()
                            if "second" not in k and "time" not in k}
            o["result"] = r
        out[u.unit_id] = (u.status, o if u.status == "done" else None)
    return out


def graph(units: list[Any], cpu: bool = False) -> tuple[float, float, int, int]:
    """(W, D, units, pieces) of a finished run: the work and the critical path in seconds of
    wall time, or (``cpu``) of CPU time of the threads that ran them."""
    work = path = 0.0
    n_pieces = 0
    for u in units:
        o = u.outcome or {}
        maps = o.get("pieces", [])
        if cpu:
            own = float(o.get("cpu_seconds") or 0.0) - sum(
                sum(m["cpu"]) for m in maps if m.get("inline"))
            times = [m["cpu"] for m in maps]
        else:
            own = float(u.seconds or 0.0) - sum(m["wall"] for m in maps)
            times = [m["seconds"] for m in maps]
        own = max(0.0, own)
        work += own + sum(sum(t) for t in times)
        path = max(path, own + sum(max(t, default=0.0) for t in times))
        n_pieces += sum(len(t) for t in times)
    return work, path, len(units), n_pieces


def scan(spec: Path, profile: Any, executor: str, n: int, db: Path, scratch: Path) -> dict[str, Any]:
    from finmlsec.scan import make_executor, run_scan, start_scan
    from finmlsec.store import Store

    store = Store.open(str(db))
    rid = start_scan(spec, store=store, profile=profile, seed=0)
    before = load()
    with contextlib.ExitStack() as stack:
        if executor == "process":
            ex: Any = make_executor("process", n)
        else:
            from distributed import LocalCluster

            cluster = stack.enter_context(LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, protocol="tcp",
                local_directory=str(scratch / f"workers-{n}")))
            ex = make_executor("dask://" + cluster.scheduler_address.removeprefix("tcp://"))
        t0 = time.perf_counter()
        try:
            run_scan(store, rid, executor=ex)
        finally:
            ex.close()
        wall = time.perf_counter() - t0
    units = store.units(rid)
    return {"executor": executor, "n": n, "wall": wall, "run": rid, "load_before": before,
            "load_after": load(), "graph": graph(units), "cpu_graph": graph(units, cpu=True),
            "same": comparable(units),
            "status": {s: sum(u.status == s for u in units)
                       for s in ("done", "skipped", "error", "failed")}}


def table(case: str, rows: list[dict[str, Any]]) -> str:
    one = next(r for r in rows if r["executor"] == "dask" and r["n"] == 1)
    W, D, n_units, n_pieces = one["graph"]
    Wc, Dc, _, _ = one["cpu_graph"]
    lines = [f"{case}: {n_units} units, {n_pieces} pieces as tasks of their own (1-worker run): "
             f"work W = {W:.0f} s wall / {Wc:.0f} s CPU, critical path D = {D:.1f} s wall / "
             f"{Dc:.1f} s CPU", "",
             "| executor | workers | wall (s) | speed-up | bound on idle cores, max(W/p, D) .. "
             "W/p + D (CPU s) | load before / after |", "|---|---|---|---|---|---|"]
    for r in rows:
        p = r["n"]
        lines.append(f"| {r['executor']} | {p} | {r['wall']:.0f} | {one['wall'] / r['wall']:.2f}"
                     f" | {max(Wc / p, Dc):.0f} .. {Wc / p + Dc:.0f} | {r['load_before']} / "
                     f"{r['load_after']} |")
    for p in (16, 64):
        lo, hi = max(Wc / p, Dc), Wc / p + Dc
        lines.append(f"| dask (bound) | {p} | - | {Wc / hi:.1f} .. {Wc / lo:.1f} | "
                     f"{lo:.0f} .. {hi:.0f} | - |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="credit-scoring")
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--peer", action="store_true",
                    help="also scan with the local process pool (as many workers as cores)")
    ap.add_argument("--as-deployed", action="store_true",
                    help="only the units on the system as deployed (no countermeasures)")
    ap.add_argument("--work", type=Path, default=WORK)
    args = ap.parse_args(argv)

    from finmlsec.scan import get_profile
    from finmlsec.scan.usecases import build, find_spec

    profile = get_profile(args.profile)
    if args.as_deployed:
        profile = profile.model_copy(update={"max_defences": 0, "combinations": 0})
    case_dir = args.work / args.case
    spec = find_spec(case_dir) if case_dir.exists() else build(args.case, case_dir, seed=0)
    scratch = args.work / f"scratch-{args.case}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    rows = []
    ns = [int(n) for n in args.workers.split(",")]
    plan = [("dask", n) for n in ns] + ([("process", os.cpu_count() or 1)] if args.peer else [])
    for executor, n in plan:
        r = scan(spec, profile, executor, n, scratch / "runs.db", scratch)
        print(f"{executor} {n}: {r['wall']:.1f} s, units {r['status']}, load "
              f"{r['load_before']} -> {r['load_after']}", file=sys.stderr, flush=True)
        rows.append(r)
    same = all(r["same"] == rows[0]["same"] for r in rows)
    out = args.work / f"{args.case}-{args.profile}.json"
    out.write_text(json.dumps([{k: v for k, v in r.items() if k != "same"} for r in rows],
                              indent=1))
    print(table(args.case, rows))
    print(f"\nidentical results across executors: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

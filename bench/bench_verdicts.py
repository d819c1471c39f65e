"""Verdict agreement across scan profiles: does the quick (or standard) scan rate each threat as the
thorough scan does, and what does each cost?

For every use case (credit-scoring, fraud, market-anomaly, chatbot, ocr, built with seed 0) and the
messy loan fixture of the tests (skops pipeline on real-shaped data: missing cells, codes, free
text), the same built system is scanned with the quick, standard and thorough profiles (seed 0).
Per threat the table gives the measured risk as deployed (none / low / medium / high, or
not measured / accepted) of each profile, and quick and standard against thorough: ``agree``,
``lower`` (the cheaper profile rates the risk lower than thorough: it would let a risk through
that thorough flags) or ``higher``. Where quick is lower, the last column says whether the quick
report tells the reader that its figure is a lower bound (``lower bound`` in the threat's
recommendation; ``notes`` when only an attack's notes say so).

Each scan runs in a child process with a wall-time limit (``--limit``, seconds); a scan that does
not finish is recorded as such. Results accumulate in a JSON file (``--results``), so the cases
can be run one at a time and the table printed at the end (``--table``).

Usage: python bench/bench_verdicts.py [--cases credit-scoring,...,messy]
       [--profiles quick,standard,thorough] [--workers 2] [--limit 1800] [--results FILE]
       [--table]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = ("credit-scoring", "fraud", "market-anomaly", "chatbot", "ocr", "messy")
PROFILES = ("quick", "standard", "thorough")
LEVELS = ("none", "low", "medium", "high")
WORK = HERE / "results" / "verdicts"  # (git-ignored)


def build(case: str, work: Path) -> Path:
    """The case's spec, built once under ``work`` (seed 0)."""
    d = work / case
    if case == "messy":
        spec = d / "spec.yaml"
        if not spec.exists():
            sys.path.insert(0, str(HERE.parent / "tests"))
            from messy_loans import build_messy_system

            build_messy_system(d, seed=0)
        return spec
    from finmlsec.scan.usecases import build as build_usecase
    from finmlsec.scan.usecases import find_spec

    if d.exists():
        return find_spec(d)
    return build_usecase(case, d, seed=0)


def scan_one(case: str, profile: str, work: Path, workers: int,
             as_deployed: bool = False, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Scan ``case`` with ``profile``; the per-threat risks and the wall time. ``as_deployed``:
    only the attacks on the system as deployed (no countermeasure units), which is all the
    risk as deployed depends on. ``skip``: attacks left out of the plan."""
    from finmlsec.scan import pipeline
    from finmlsec.scan.profiles import get_profile
    from finmlsec.store import Store

    spec = build(case, work)
    store = Store.open(str(work / f"{case}-{profile}.db"))
    prof = get_profile(profile)
    if as_deployed:
        prof = prof.model_copy(update={"max_defences": 0, "combinations": 0})
    if skip:
        from finmlsec.attacks import ATTACKS

        prof = prof.model_copy(update={"only": tuple(n for n in ATTACKS.names()
                                                     if n not in skip)})
    t0 = time.perf_counter()
    run_id = pipeline.plan(spec, store=store, profile=prof, seed=0)
    outcome = pipeline.run(store, run_id, executor="process" if workers > 1 else "serial",
                           workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    pipeline.write_reports(outcome, {"md": work / f"{case}-{profile}.md"})
    counts = outcome.summary.get("counts", {})
    return {"case": case, "profile": profile, "status": outcome.status,
            "seconds": round(seconds, 1), "threats": threats_of(outcome.summary),
            "counts": counts}


def partial(case: str, profile: str, work: Path, seconds: float) -> dict[str, Any]:
    """What a scan stopped at the limit measured: its stored units summarised; a threat with an
    attack (as deployed) not yet run is ``unfinished``."""
    from finmlsec.scan.runner import finish
    from finmlsec.store import Store

    out: dict[str, Any] = {"case": case, "profile": profile, "status": "timeout",
                           "seconds": round(seconds, 1)}
    db = work / f"{case}-{profile}.db"
    if not db.exists():
        return out
    store = Store.open(str(db))
    runs = store.runs()
    if not runs:
        return out
    summary = finish(store, runs[0].id)
    threats = threats_of(summary)
    for name, t in zip(threats, summary["threats"], strict=True):
        if t["attacked"] and any(a.get("status") in ("pending", "running")
                                 for a in t.get("attacks", [])):
            threats[name]["risk"] = "unfinished"
    out.update(threats=threats, counts=summary.get("counts", {}))
    return out


def threats_of(summary: dict[str, Any]) -> dict[str, Any]:
    """Per threat (``via.attack``): the risk as deployed and what the report says of it."""
    threats = {}
    for t in summary["threats"]:
        attacks = t.get("attacks", [])
        threats[f"{t['via']}.{t['attack']}"] = {
            "risk": t["risk"] if t["attacked"] else "accepted",
            "success": t["success"],
            "decision": t.get("decision"),
            "attacks": [f"{a.get('name')}: {a.get('status')}" for a in attacks],
            "errors": [str(a["error"]).splitlines()[0] for a in attacks if a.get("error")],
            "says_lower_bound": "lower bound" in str(t.get("recommendation", "")),
            # an attack's own result says its figure is a lower bound (e.g. few reference models)
            "notes_lower_bound": any((a.get("metrics") or {}).get("lower_bound")
                                     for a in attacks),
        }
    return threats


def compare(cheap: str | None, thorough: str | None) -> str:
    if cheap is None or thorough is None or "unfinished" in (cheap, thorough):
        return "n/a"
    if cheap == thorough:
        return "agree"
    if cheap in LEVELS and thorough in LEVELS:
        return "lower" if LEVELS.index(cheap) < LEVELS.index(thorough) else "higher"
    return f"{cheap} vs {thorough}"


def table(results: dict[str, Any]) -> str:
    rows = ["| case | threat | quick | standard | thorough | quick vs thorough | "
            "standard vs thorough | quick says lower bound |",
            "|---|---|---|---|---|---|---|---|"]
    times = ["| case | quick (s) | standard (s) | thorough (s) |", "|---|---|---|---|"]
    for case in CASES:
        got = {p: results.get(f"{case}/{p}") for p in PROFILES}
        if not any(got.values()):
            continue

        def cell(r: dict[str, Any] | None) -> str:
            if r is None:
                return "not run"
            if r.get("status") == "timeout":
                return f"stopped at {r['seconds']:.0f} (limit)"
            if r.get("status") == "failed":
                return f"failed after {r['seconds']:.0f}"
            return f"{r['seconds']:.0f}"

        times.append(f"| {case} | " + " | ".join(cell(got[p]) for p in PROFILES) + " |")
        names = sorted({n for r in got.values() if r and r.get("threats") for n in r["threats"]})
        for name in names:
            risk = {p: (got[p]["threats"].get(name, {}).get("risk")
                        if got[p] and got[p].get("threats") else None) for p in PROFILES}
            q, s, t = (risk[p] for p in PROFILES)
            qt = compare(q, t)
            said = "-"
            if qt == "lower":
                info = got["quick"]["threats"][name]
                said = ("yes" if info["says_lower_bound"]
                        else "notes only" if info["notes_lower_bound"] else "NO")
            rows.append(f"| {case} | `{name}` | {q or '-'} | {s or '-'} | {t or '-'} | {qt} | "
                        f"{compare(s, t)} | {said} |")
    return "\n".join(rows) + "\n\n" + "\n".join(times)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=float, default=1800.0,
                    help="wall-time limit of one scan, seconds")
    ap.add_argument("--results", type=Path, default=WORK / "results.json")
    ap.add_argument("--as-deployed", action="store_true",
                    help="run only the attacks on the system as deployed (no countermeasures)")
    ap.add_argument("--skip", default="", help="attacks to leave out, comma-separated")
    ap.add_argument("--table", action="store_true", help="only print the table of --results")
    ap.add_argument("--one", nargs=2, metavar=("CASE", "PROFILE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = args.results.parent
    work.mkdir(parents=True, exist_ok=True)
    if args.one:
        skip = tuple(n for n in args.skip.split(",") if n)
        out = scan_one(args.one[0], args.one[1], work, args.workers, args.as_deployed, skip)
        out.update(as_deployed=args.as_deployed, skipped_attacks=list(skip))
        (work / f"{args.one[0]}-{args.one[1]}.json").write_text(json.dumps(out, indent=1))
        return 0
    results: dict[str, Any] = (json.loads(args.results.read_text())
                               if args.results.exists() else {})
    for key, r in results.items():  # scans stopped at the limit: summarised again from disk
        if r.get("status") == "timeout":
            results[key] = partial(*key.split("/"), work, r["seconds"])
    if not args.table:
        for case in args.cases.split(","):
            if case not in CASES:
                print(f"unknown case {case!r}; known: {', '.join(CASES)}", file=sys.stderr)
                return 2
            for profile in args.profiles.split(","):
                t0 = time.perf_counter()
                cmd = [sys.executable, __file__, "--one", case, profile, "--workers",
                       str(args.workers), "--results", str(args.results),
                       *(["--as-deployed"] if args.as_deployed else []),
                       *(["--skip", args.skip] if args.skip else [])]
                # its own process group, so that a scan over the limit stops with its workers
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True)
                try:
                    _, err = proc.communicate(timeout=args.limit)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                    results[f"{case}/{profile}"] = partial(case, profile, work, args.limit)
                else:
                    one = work / f"{case}-{profile}.json"
                    if proc.returncode == 0 and one.exists():
                        results[f"{case}/{profile}"] = json.loads(one.read_text())
                    else:
                        results[f"{case}/{profile}"] = {
                            "status": "failed", "seconds": round(time.perf_counter() - t0, 1),
                            "error": err[-2000:]}
                r = results[f"{case}/{profile}"]
                print(f"{case} {profile}: {r['status']} in {r['seconds']} s", flush=True)
                args.results.write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

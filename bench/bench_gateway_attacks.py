"""Gateway extraction, second part: the repository's extraction attacks against the real gateway.

For each use case built by ``finmlsec demo build`` (credit scoring: logistic regression and
gradient boosting; fraud and market anomaly: gradient boosting), the model is served by the
gateway with the DEFAULT policy (what ``finmlsec serve SPEC`` derives without ``--policy``) on
loopback, over real HTTP (uvicorn). Each attack (equation solving with d+1 and 10(d+1) queries,
learning-based extraction with probabilities and with labels only, tree path-finding) gets a key
of its own and sends ``--batch`` records per request (10 by default: small requests get the most
answers before a block). Once blocked, the attacker learns nothing more and finishes with its own
public copy's answers (see ``finmlsec.gateway.redteam``).

Columns: fidelity reached, the no-query baseline (better of the constant copy and a copy trained
on the public split), records sent / answered / refused by the input screen, records answered
when the key was blocked, "stopped", the fidelity's Wilson 95% interval over the records it is
measured on, and the paired test of the copy against the baseline copy on those records: the
one-sided 95% lower bound of fidelity minus baseline, the records only the copy (b) and only the
baseline copy (c) answer like the model, and the p-value of "at most 5 points above the
baseline" (Tango's score test). "NO" (not stopped) only when that test rejects at 0.05; "yes
(n.s.)" when the point estimate is above the margin but the test cannot tell it from the margin.
For an attack not plainly stopped, a control line: the
same attack without the gateway, the model answering its first k queries and the attacker's own
copy every later one (k = 0, 1, the answers it got before the block, all): whether the extra
fidelity comes from the model's answers or from the copy that answers after the block. Fidelity is measured
on the held-out split or, where the model's decisions are imbalanced (under 20% for the rarer
one: "(bal.)"), on every record of the test and training splits with the rarer decision and as
many others (a constant copy would score 0.998 on fraud otherwise; for market anomaly the pool
also holds the NASDAQ Composite days, ``redteam.EXTRA_EVALUATION``). Then 60 genuine clients per
use case, each replaying 150 records of the held-out split one per request: how many the gateway
blocks (and flags), and how many genuine records the screen refuses.

Run: ``python bench/run.py gateway_attacks`` (about 10 minutes on 2 cores), or
``python bench/bench_gateway_attacks.py [--batch N] [--clients N] [--usecases a,b]
[--skip-attacks | --skip-genuine]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from finmlsec.gateway import redteam as rt

MODELS = (("credit-scoring", "logreg"), ("credit-scoring", "gbm"), ("fraud", "gbm"),
          ("market-anomaly", "gbm"))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_gateway_attacks")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--clients", type=int, default=60)
    ap.add_argument("--rows", type=int, default=150)
    ap.add_argument("--usecases", default="credit-scoring,fraud,market-anomaly")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip-genuine", action="store_true")
    ap.add_argument("--no-controls", action="store_true",
                    help="no control runs for attacks not stopped (the attack without the "
                    "gateway, the model answering its first k queries, its own copy the rest)")
    ap.add_argument("--skip-attacks", action="store_true",
                    help="only the genuine clients (the scenarios are still built)")
    args = ap.parse_args(argv)
    wanted = args.usecases.split(",")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="finmlsec-gw-attacks-"))
    t0 = time.perf_counter()
    print(f"{'model':<30} {'attack':<30} {'fidelity':>8} {'baseline':>8} {'sent':>5} "
          f"{'answered':>8} {'screened':>8} {'blocked at':>10} {'stopped':>10}", flush=True)
    scenarios: dict[str, rt.Scenario] = {}
    failures = 0
    for usecase, model in MODELS:
        if usecase not in wanted:
            continue
        sc = rt.usecase_scenario(usecase, model, work)
        scenarios.setdefault(usecase, sc)
        if args.skip_attacks:
            continue
        attacks = rt.standard_attacks(sc)
        fallback = rt.public_copy(sc)
        for (_, attack, budget), o in zip(attacks, rt.attack_gateway(
                sc, attacks, fallback=fallback, batch_size=args.batch), strict=True):
            at = "-" if o.blocked_after is None else str(o.blocked_after)
            verdict = o.verdict
            failures += not o.stopped
            lo, hi = o.interval
            print(f"{o.scenario:<30} {o.attack:<30} {o.fidelity:>8.3f} {o.baseline:>8.3f} "
                  f"{o.rows_sent:>5} {o.rows_answered:>8} {o.rows_screened:>8} {at:>10} "
                  f"{verdict:>10}  [{lo:.2f}, {hi:.2f}] of {o.n_eval}; lift >= "
                  f"{o.lift_lower:+.3f} (b={o.only_copy}, c={o.only_baseline}, "
                  f"p={o.p_value:.3g})"
                  + (f"  {o.error}" if o.error else ""), flush=True)
            if verdict != "yes" and not o.error and o.blocked_after is not None and not args.no_controls:
                # the same attack, the model answering exactly k queries, its own copy the rest
                ks = sorted({0, 1, o.blocked_after, budget})
                got = {k: rt.cutoff_fidelity(sc, attack, budget, fallback, k) for k in ks}
                print(f"{'':<30} {'  control, k model answers:':<30} "
                      + ", ".join(f"k={k}: {v:.3f}" for k, v in got.items()), flush=True)
    if args.skip_genuine:
        scenarios = {}
    print(f"\n{'use case':<24} {'clients':>7} {'records':>7} {'blocked':>7} {'flagged':>7} "
          f"{'screened records':>16} {'429s':>5}")
    for name, sc in scenarios.items():
        g = rt.genuine_clients(sc, sc.genuine_records, clients=args.clients,
                               rows_per_client=args.rows)
        print(f"{name:<24} {g.clients:>7} {g.rows:>7} {g.blocked:>7} {g.flagged:>7} "
              f"{g.screened_rows:>16} {g.rate_limited:>5}", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s; attacks not stopped: {failures})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

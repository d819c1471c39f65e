"""Secure by default: the guard policy ``finmlsec serve`` derives from the spec's analysis when no
``--policy`` is given, and the start-up warnings for every guard that is off.

The analysis recommends countermeasures at the model's input and output (the paper's Table 2);
each one recommended is switched on at a level measured on the project's own use cases:

- ``modify_confidence``: probabilities rounded to 1 decimal (equation solving needs exact
  confidences; see ``docs/benchmarks.md``, gateway extraction);
- ``gateway_rate_limiting``: 100 requests per second and 10,000 records per day per key, and the
  PRADA extraction detector, judging from 40 distinct queries (fewer than the 49 an equation-solving
  attack needs on the credit-scoring model), which also blocks a client when more than 10% of its
  queries are far from the training data or refused by the input screen; the request that tips
  the verdict is refused too (measured against the repository's extraction attacks and genuine
  clients: ``bench/bench_gateway_attacks.py``);
- ``detect_malicious_input``: the out-of-distribution screen, calibrated to refuse about 0.2% of
  the training records (at most 0.5% of genuine held-out records, measured), and every record
  with a number more than 25% of its training range beyond that range (the isolation forest
  alone answers records far outside the data; on market anomaly the midpoint of the schema's
  ranges, where tree path-finding starts, was answered).

Without a spec (``serve demo``) all three are on. A policy file replaces all of this.

Example:
    >>> policy, on = derive_policy(None, has_reference=True)
    >>> policy.output.mode, policy.extraction.enabled, policy.extraction.min_queries
    ('round', True, 40)
    >>> guard_warnings(Policy(output={"mode": "none"}), host="0.0.0.0")[:1]
    ['output: full-precision probabilities are returned (equation solving copies the model); set output.mode']
"""

from __future__ import annotations

from typing import Any

from finmlsec.gateway.policy import (
    BudgetPolicy,
    ExtractionPolicy,
    OutputPolicy,
    Policy,
    ScreenPolicy,
)

SCREEN_QUANTILE = 0.002
SCREEN_ENVELOPE = 0.25
LOOPBACK = ("127.0.0.1", "::1", "localhost")
IO_COUNTERMEASURES = ("modify_confidence", "gateway_rate_limiting", "detect_malicious_input")


def recommended(analysis: Any) -> set[str]:
    """The input/output countermeasures the analysis recommends or the spec says are deployed
    (at the gateway, that is where they are deployed); all of them without an analysis."""
    if analysis is None:
        return set(IO_COUNTERMEASURES)
    return {c.id for c in analysis.countermeasures
            if (c.recommended or c.deployed) and c.id in IO_COUNTERMEASURES}


def derive_policy(analysis: Any, *, has_reference: bool) -> tuple[Policy, list[str]]:
    """The policy the analysis calls for, and one line per guard saying why it is on."""
    rec = recommended(analysis)
    on: list[str] = []
    output, budget = OutputPolicy(), BudgetPolicy()
    extraction, screening = ExtractionPolicy(), ScreenPolicy()
    if "modify_confidence" in rec:
        output = OutputPolicy(mode="round", decimals=1)
        on.append("output: probabilities rounded to 1 decimal (modify_confidence)")
    if "gateway_rate_limiting" in rec:
        budget = BudgetPolicy(per_day=10_000)
        extraction = ExtractionPolicy(enabled=True)
        on.append(f"budget: {budget.requests_per_second} requests/s and {budget.per_day:,} "
                  "records/day per key (gateway_rate_limiting)")
        on.append(f"extraction: PRADA from {extraction.min_queries} distinct queries per key, "
                  f"then {extraction.action} (gateway_rate_limiting)")
    if "detect_malicious_input" in rec and has_reference:
        screening = ScreenPolicy(enabled=True, params={"quantile": SCREEN_QUANTILE,
                                                       "envelope": SCREEN_ENVELOPE,
                                                       "random_state": 0})
        on.append("screening: out-of-distribution records refused, and records beyond the "
                  "training range (detect_malicious_input)")
    return Policy(output=output, budget=budget, extraction=extraction,
                  screening=screening), on


def guard_warnings(policy: Policy, *, host: str, tls: bool = False) -> list[str]:
    """One line for every guard that is off, and for a listener beyond loopback without TLS."""
    out = []
    if policy.output.mode == "none":
        out.append("output: full-precision probabilities are returned (equation solving copies "
                   "the model); set output.mode")
    b = policy.budget
    if b.requests_per_second is None and b.requests_per_minute is None:
        out.append("budget: no request rate limit per key")
    if b.per_day is None and b.lifetime is None:
        out.append("budget: no daily or lifetime record budget per key (a patient client may "
                   "query without end)")
    if not policy.extraction.enabled:
        out.append("extraction: no extraction detection (model stealing goes unnoticed)")
    if not policy.screening.enabled:
        out.append("screening: no input screen (out-of-distribution and adversarial records "
                   "are answered)")
    if host not in LOOPBACK and not tls:
        out.append(f"listening on {host} without TLS: API keys and records cross the network "
                   "in clear; give --ssl-certfile/--ssl-keyfile, or terminate TLS in a proxy "
                   "and say so with --behind-tls-proxy")
    return out


def spec_policy(spec: str) -> tuple[Policy, list[str]]:
    """:func:`derive_policy` for a spec file (``demo``: the built-in credit-scoring model)."""
    if spec == "demo":
        return derive_policy(None, has_reference=True)
    from finmlsec.spec import load_spec
    from finmlsec.threatmodel import analyze

    system = load_spec(spec)
    return derive_policy(analyze(system), has_reference=system.data is not None)

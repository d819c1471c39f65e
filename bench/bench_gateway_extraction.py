"""Gateway extraction, first part: does the default output coarsening break equation solving?

Equation solving (``extraction.equation``, Tramer et al. 2016) against the credit-scoring logistic
regression, answering as the gateway does under each output policy (full probabilities, rounded to
2 decimals, rounded to 1 decimal: the default policy), with d + 1 = 49 and 10 (d + 1) = 490
queries; fidelity on the held-out applicants and on uniform records of the schema. The queries go
through a local oracle that answers exactly what the gateway answers; the detector and budgets,
which act on the stream of queries, are measured against the real server by the tests.

Run: ``python bench/run.py gateway_extraction``.
"""

from __future__ import annotations

import sys

import numpy as np

from finmlsec.attacks import AttackData, Labeled
from finmlsec.attacks.extraction_equation import EquationSolving
from finmlsec.gateway.demo import credit_scoring_model
from finmlsec.targets.oracle import Oracle

POLICIES = (("full probabilities", "proba", 2), ("round, 2 decimals", "rounded", 2),
            ("round, 1 decimal (default)", "rounded", 1))


def main(argv: list[str]) -> int:
    m = credit_scoring_model(seed=0)
    classes = list(m.target.classes_)
    test = Labeled(m.heldout, np.asarray([classes.index(c) for c in m.target.predict(m.heldout)]))
    print(f"{'output policy':<28} {'queries':>7} {'fidelity held-out':>18} {'fidelity uniform':>17}")
    for label, access, decimals in POLICIES:
        for extra in (0, 441):
            r = EquationSolving(extra_queries=extra).run(
                Oracle(m.target, access=access, decimals=decimals),
                AttackData(schema=m.schema, test=test))
            print(f"{label:<28} {int(r.queries):>7} {r.success:>18.3f} "
                  f"{r.metrics['fidelity_uniform']:>17.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

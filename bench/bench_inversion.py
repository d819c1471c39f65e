"""Attribute inference on German credit's personal fields: ours beside the
adversarial-robustness-toolbox's black-box attribute inference, against a no-model baseline with
the same side information (the other fields and the label).

The attacker holds 250 held-out records with labels (its population); victims are 250 training
records (members) and, for contrast, 250 other held-out records (non-members). Numbers are
inferred as quartile bins of the population. ART's AttributeInferenceBlackBox learns the field
from the other (encoded) fields and the model's prediction on the same 250 population records
(random-forest attack model).

    python bench/run.py inversion
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TARGET_NAMES, Timer, fit_target, german_credit, table  # noqa: E402

from finmlsec.attacks import ATTACKS, AttackData, Labeled  # noqa: E402
from finmlsec.targets.oracle import Oracle  # noqa: E402


def art_attribute(setup: Any, model: Any, field: str, pop: Any, victims: Any) -> float | None:
    """ART black-box attribute inference of a categorical ``field`` (one-hot slice)."""
    try:
        from art.attacks.inference.attribute_inference import AttributeInferenceBlackBox
        from art.estimators.classification.scikitlearn import SklearnClassifier
    except ImportError:
        return None
    prep = model[0]
    names = list(prep.get_feature_names_out())
    cols = [i for i, n in enumerate(names) if n.startswith(f"cat__{field}_")]
    if not cols or cols != list(range(cols[0], cols[-1] + 1)):
        return None

    def enc(X: Any) -> np.ndarray:
        Z = prep.transform(X)
        return np.asarray(Z.toarray() if hasattr(Z, "toarray") else Z, dtype=float)

    classifier = SklearnClassifier(model=model[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attack = AttributeInferenceBlackBox(classifier, attack_model_type="rf",
                                            attack_feature=slice(cols[0], cols[-1] + 1))
        Zp = enc(pop.X)
        attack.fit(Zp)
        Zv = enc(victims.X)
        rest = np.delete(Zv, cols, axis=1)
        pred = np.asarray(model[-1].predict(Zv)).reshape(-1, 1)
        values = np.eye(len(cols))
        inferred = attack.infer(rest, pred=pred, values=[list(v) for v in values])
    truth = Zv[:, cols]
    return float(np.mean(np.argmax(inferred, axis=1) == np.argmax(truth, axis=1)))


def main(argv: list[str]) -> int:
    setup = german_credit()
    held = setup.held_idx
    rng = np.random.default_rng(0)
    pop = Labeled(*setup.rows(held[:250]))
    members = Labeled(*setup.rows(np.sort(rng.choice(setup.train_idx, 250, replace=False))))
    nonmembers = Labeled(*setup.rows(held[250:]))
    data = AttackData(schema=setup.schema, population=pop, members=members, nonmembers=nonmembers)
    fields = [f.name for f in setup.schema.personal()]
    rows: list[list[Any]] = []
    with threadpool_limits(limits=1):
        for kind in ("rf", "gb", "lr"):
            model = fit_target(setup, kind)
            for access in ("proba", "label"):
                with Timer() as t:
                    r = ATTACKS.get("inversion.attribute")(max_victims=250).run(
                        Oracle(model, access=access), data)
                m = r.metrics
                print(f"  {kind} {access}: {t.seconds:.1f} s", flush=True)
                for f in fields:
                    for g in ("members", "nonmembers"):
                        k = f"{f}.{g}"
                        rows.append([TARGET_NAMES[kind], access, f, g, m[f"{k}.prior_accuracy"],
                                     m[f"{k}.baseline_accuracy"],
                                     m[f"{k}.accuracy_likelihood"], m[f"{k}.accuracy_bayes"],
                                     m[f"{k}.lift"], "", t.seconds if f == fields[0]
                                     and g == "members" else ""])
            for f in fields:
                if setup.schema[f].type.value != "categorical":
                    continue
                with Timer() as t:
                    acc = art_attribute(setup, model, f, pop, members)
                print(f"  {kind} ART {f}: {acc} ({t.seconds:.1f} s)", flush=True)
                if acc is not None:
                    rows.append([TARGET_NAMES[kind], "proba", f, "members", "", "", "", "", "",
                                 acc, t.seconds])
    print(table(["target", "output", "field", "victims", "prior", "no-model baseline",
                 "ours (likelihood)", "ours (bayes)", "lift (likelihood)", "ART black-box",
                 "seconds"], rows))
    print("\nLift: ours (likelihood rule) minus the no-model baseline with the same side "
          "information; the attack's verdict per field is in AttackResult.notes.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

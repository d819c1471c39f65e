"""The evasion note names the classes a success moves a record from, whether the model answers
class names (the bank's pipeline) or the schema's class indices (a model a countermeasure
retrained on the scan's labels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from finmlsec.attacks.evasion_common import goal_of
from finmlsec.schema import Feature, FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle


def _fit(y: np.ndarray) -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"income": rng.normal(size=len(y))})
    return LogisticRegression().fit(X, y)


def test_the_note_names_the_refused_class_for_a_model_on_class_indices() -> None:
    schema = FeatureSchema(features=[Feature(name="income", type=FeatureType.NUMERIC)],
                           classes=["accept", "reject"], favourable_class="accept",
                           positive_class="reject")
    y = np.tile([0, 1], 20)  # indices into schema.classes, as a defended model is trained
    goal, notes = goal_of(None, Oracle(_fit(y)), schema)
    assert goal == 0
    assert notes[0].startswith("a success moves a record from reject to the favourable "
                               "outcome accept"), notes
    names = np.array(["accept", "reject"])[y]  # the bank's own pipeline on class names
    goal, notes = goal_of(None, Oracle(_fit(names)), schema)
    assert goal == "accept" and "from reject to" in notes[0]


def test_integer_class_values_are_not_renamed() -> None:
    """Codes that are the class values themselves (German credit's 1 good, 2 bad) stay as they
    are: no index is mapped onto a name."""
    schema = FeatureSchema(features=[Feature(name="income", type=FeatureType.NUMERIC)],
                           classes=["1", "2"], favourable_class="1")
    goal, notes = goal_of(None, Oracle(_fit(np.tile([1, 2], 20))), schema)
    assert goal == 1 and "from 2 to the favourable outcome 1" in notes[0], notes

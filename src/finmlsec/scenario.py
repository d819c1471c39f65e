"""What the attack, scan and serve commands need from a spec: the target, the data, the splits,
and the attacker's view of them.

:func:`load_scenario` reads a spec (or takes a loaded :class:`~finmlsec.spec.SystemSpec`), loads
the model its ``model:`` section points at and the data and splits of its ``data:`` section
(:func:`finmlsec.datasets.splits.load_data`: validated against the feature schema, errors name
the file). ``model.factory`` (:func:`finmlsec.targets.factory.load_factory`) gives the
unfitted model the reference-model and poisoning attacks train; without it a scikit-learn or torch
target builds its own, and an ONNX or remote target has none.

Roles of the splits: ``train`` is what the model was trained on (the members); ``test`` is
held-out data for utility and fidelity; ``population`` is data from the same distribution that the
attacker holds. :meth:`Scenario.attack_data` builds the attack's view: in the standard threat
model the attacker's candidate pool mixes training members with the population (membership
unknown to the attacker; the nonmembers scored are the population records), in the strict one the
pool is the population only, disjoint from the training data, and the nonmembers scored are the
test records.

Example:
    >>> from finmlsec.spec import parse_spec
    >>> spec = parse_spec('''
    ... organisations: [{id: bank}, {id: customer}]
    ... roles: {training_data_provider: bank, system_user: customer,
    ...         model_generator: bank, model_operator: bank}
    ... data: {dataset: german_credit, seed: 0}
    ... ''')
    >>> sc = load_scenario(spec)
    >>> len(sc.train), len(sc.test), len(sc.population), sc.target is None
    (500, 250, 250, True)
    >>> data = sc.attack_data(standard=True)
    >>> len(data.population), len(data.members), len(data.nonmembers)
    (750, 500, 250)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.arrays import concat_rows, take_rows
from finmlsec.attacks.base import AttackData, Labeled
from finmlsec.datasets.base import Dataset
from finmlsec.datasets.splits import load_data
from finmlsec.errors import TargetError
from finmlsec.schema import FeatureSchema
from finmlsec.targets.base import Target


@dataclass(frozen=True)
class Scenario:
    """A loaded spec with its target and data (see the module docstring)."""

    spec: Any
    target: Target | None
    schema: FeatureSchema | None
    dataset: Dataset | None
    train: Dataset | None
    test: Dataset | None
    population: Dataset | None
    model_factory: Callable[[], Any] | None
    seed: int = 0
    #: the bank's cut-off (``model.decision_threshold``), applied by the target's ``predict``
    #: and by the models the factory gives (:mod:`finmlsec.targets.cutoff`); None: the model's
    #: own ``predict``
    cutoff: Any = None

    def attack_data(self, standard: bool = True) -> AttackData:
        """The attacker's knowledge and the evaluator's truth for this scenario.

        ``standard=True``: the attacker's pool is train + population, shuffled (it may contain
        the members; the attacker does not know which); nonmembers scored are the population.
        ``standard=False`` (strict): the pool is the population only; nonmembers are the test set.
        """
        train, test, pop = self.train, self.test, self.population
        endpoint = getattr(self.target, "url", None)
        if standard and train is not None and pop is not None:
            pool: Labeled | None = _shuffle(_concat(_lab(train), _lab(pop)), self.seed)
            nonmembers: Labeled | None = _lab(pop)
        else:
            pool = _lab(pop) if pop is not None else None
            nonmembers = _lab(test) if test is not None else None
        return AttackData(
            schema=self.schema,
            population=pool,
            model_factory=self.model_factory,
            train=_lab(train) if train is not None else None,
            endpoint=endpoint if isinstance(endpoint, str) else None,
            members=_lab(train) if train is not None else None,
            nonmembers=nonmembers if train is not None else None,
            test=_lab(test) if test is not None else None,
            extra={"threat_model": "standard" if standard else "strict",
                   "classes": list(self.dataset.classes) if self.dataset is not None else None,
                   # the personal numbers the spec declares (what a linkage attacker knows)
                   "personal_fields": [p.field for p in getattr(
                       getattr(self.spec, "stakes", None), "personal_fields", ()) or ()]},
        )


def _lab(ds: Dataset) -> Labeled:
    return Labeled(ds.X, np.asarray(ds.y))


def _concat(a: Labeled, b: Labeled) -> Labeled:
    return Labeled(concat_rows(a.X, b.X), np.concatenate([np.asarray(a.y), np.asarray(b.y)]))


def _shuffle(data: Labeled, seed: int) -> Labeled:
    order = np.random.default_rng(seed).permutation(len(data))
    assert data.y is not None
    return Labeled(take_rows(data.X, order), data.y[order])


def _trained_labels(target: Target | None, classes: Any) -> list[Any] | None:
    """The class values the deployed model was trained with, in the order of the scan's label
    indices (its ``classes_`` where they are the data's classes and not the indices
    themselves); None when the model was trained on indices."""
    values = list(np.asarray(getattr(target, "classes_", [])).tolist())
    if not values or classes is None or [str(v) for v in values] != [str(c) for c in classes]:
        return None
    if values == list(range(len(values))):
        return None
    return values


def _model_factory(target: Target | None, declared: Callable[[], Any] | None = None,
                   schema: FeatureSchema | None = None,
                   classes: Any = None) -> Callable[[], Any] | None:
    """The factory of unfitted models "like the deployed one" that attacks and defences train
    on the scan's index labels: the declared ``model.factory`` or a clone of a scikit-learn
    model, fed the columns in their trained dtypes and, when the deployed model was trained on
    class names, trained on those names (:class:`~finmlsec.targets.typed.AsTrained`)."""
    from sklearn.base import clone

    from finmlsec.targets.typed import AsTrained, needs_cast

    tabular = getattr(target, "input_kind", "tabular") == "tabular"
    labels = _trained_labels(target, classes) if tabular else None
    if declared is not None:  # model.factory: an ONNX or remote model gets reference models too
        cast_schema = schema if needs_cast(schema) and tabular else None
        if cast_schema is None and labels is None:
            return declared

        def cast() -> Any:
            return AsTrained(cast_schema, declared(), labels=labels)

        return cast
    own = getattr(target, "model_factory", None)
    if callable(own):  # torch targets: an unfitted TorchClassifier
        return own
    est = getattr(target, "estimator", None)
    if est is None:
        return None

    def factory() -> Any:
        model = clone(est)
        if labels is None:
            return model
        if isinstance(model, AsTrained):
            return model.set_params(labels=labels)
        return AsTrained(None, model, labels=labels)

    return factory


def load_scenario(spec_or_path: Any, *, trust_pickle: bool = False) -> Scenario:
    """Load a spec's target and data (see the module docstring)."""
    from finmlsec.spec import SystemSpec, load_spec

    spec = spec_or_path if isinstance(spec_or_path, SystemSpec) else load_spec(spec_or_path)
    base = Path(spec.source_dir)
    target = None
    if spec.model is not None:
        from finmlsec.targets.load import load_target

        target = load_target(spec.model, base_dir=base, trust_pickle=trust_pickle)
    declared = None
    if spec.model is not None and spec.model.factory is not None:
        from finmlsec.targets.factory import load_factory

        source = None if isinstance(spec_or_path, SystemSpec) else str(spec_or_path)
        declared = load_factory(spec.model.factory, base_dir=base, source=source)
    ref = spec.data
    if ref is None:
        target, factory, cutoff = _with_cutoff(spec, target, _model_factory(target, declared),
                                               None, None)
        return Scenario(spec, target, None, None, None, None, None, factory, cutoff=cutoff)
    dataset, train, test, pop = load_data(ref, base, reads=_ids_read_by(target))
    if dataset.schema is not None:
        check_personal_fields(spec, dataset.schema)
        _warn_read_ids(dataset.schema, str(spec.source_dir))
    if target is not None:
        from finmlsec.targets.typed import typed

        target = typed(target, dataset.schema)
    factory = _model_factory(target, declared, dataset.schema, dataset.classes)
    target, factory, cutoff = _with_cutoff(spec, target, factory, dataset.schema, dataset.classes)
    if target is not None and not hasattr(target, "url"):
        _smoke(target, (test or train).X)
    return Scenario(spec, target, dataset.schema, dataset, train, test, pop, factory,
                    seed=ref.seed, cutoff=cutoff)


def check_personal_fields(spec: Any, schema: FeatureSchema) -> None:
    """A :class:`~finmlsec.errors.SpecError` when ``stakes.personal_fields`` names a field the
    data's schema does not have: the analysis would recommend rounding fields that do not exist
    (and give them as the reason the data is personal), and the scan could not measure it. The
    likely cause is a shipped use case's stakes, which name the use case's own data's fields.

    Example:
        >>> from types import SimpleNamespace
        >>> from finmlsec.datasets import load
        >>> from finmlsec.spec.models import PersonalField
        >>> stakes = SimpleNamespace(personal_fields=(PersonalField(field="age", round_to=10),
        ...                                           PersonalField(field="salary")))
        >>> check_personal_fields(SimpleNamespace(stakes=stakes), load("german_credit").schema)
        Traceback (most recent call last):
        ...
        finmlsec.errors.SpecError: stakes.personal_fields: 'salary' is not a field of the data ...
    """
    from finmlsec.errors import SpecError

    fields = [p.field for p in getattr(getattr(spec, "stakes", None), "personal_fields", ()) or ()]
    missing = [f for f in fields if f not in schema.names]
    if not missing:
        return
    names = ", ".join(repr(f) for f in missing)
    mine = [f.name for f in schema.features if f.personal]
    suggest = (f"[{', '.join(mine)}] (the schema's personal fields)" if mine else "[]")
    raise SpecError(
        f"{names} {'is not a field' if len(missing) == 1 else 'are not fields'} of the data "
        f"(its schema has {', '.join(schema.names[:12])}{', ...' if len(schema.names) > 12 else ''}"
        f"); a shipped use case's stakes name its own data's fields: name yours, e.g. "
        f"`stakes: {{personal_fields: {suggest}}}` in the spec (merged with the use case's "
        "stakes; [] when no field is personal)", "stakes.personal_fields")


def _with_cutoff(spec: Any, target: Target | None, factory: Callable[[], Any] | None,
                 schema: FeatureSchema | None, classes: Any
                 ) -> tuple[Target | None, Callable[[], Any] | None, Any]:
    """The target and factory deciding at the spec's ``model.decision_threshold`` (applied to
    the schema's positive class; see :mod:`finmlsec.targets.cutoff`), and the cut-off."""
    threshold = getattr(getattr(spec, "model", None), "decision_threshold", None)
    if threshold is None or target is None:
        return target, factory, None
    from finmlsec.targets.cutoff import (
        Cutoff,
        CutoffTarget,
        ThresholdedFactory,
        check_two_classes,
        positive_position,
    )

    check_two_classes(target.classes_, threshold)
    positive = getattr(schema, "positive_class", None)
    favourable = getattr(schema, "favourable_class", None)
    cutoff = Cutoff(float(threshold), positive_position(target.classes_, positive, favourable))
    wrapped: Target = CutoffTarget(target, cutoff)
    if factory is not None:
        # the factory's models answer in the data's class order (label indices)
        own = positive_position(classes, positive, favourable) if classes is not None and len(
            classes) == 2 else cutoff.index
        factory = ThresholdedFactory(factory, Cutoff(cutoff.threshold, own))
    return wrapped, factory, cutoff


def _ids_read_by(target: Target | None) -> Any:
    """Which row-id columns ``target`` reads, found by asking it: an id it reads is one without
    which it cannot answer (a pipeline trained with it: scikit-learn refuses a frame without a
    column its transformers take; an ONNX model has an input for it) or answers otherwise. A
    pipeline that was fitted on a frame holding the id but drops it (a ColumnTransformer's
    remainder) does not read it. A remote model is not asked: its ids are left out."""
    if target is None or hasattr(target, "url") or \
            getattr(target, "input_kind", "tabular") != "tabular":
        return None
    proba = "proba" in getattr(target, "capabilities", ("proba",))

    def answer(X: pd.DataFrame) -> np.ndarray | None:
        try:
            return np.asarray(target.predict_proba(X) if proba else target.predict(X))
        except Exception:  # noqa: BLE001 - any refusal means: it needs what was removed
            return None

    def reads(X: pd.DataFrame, ids: Any) -> list[str]:
        full = answer(X)
        if full is None:  # it cannot read the data at all: the smoke test says why
            return []
        out = []
        for c in ids:
            got = answer(X.drop(columns=[c]))
            if got is None or got.shape != full.shape or not np.array_equal(
                    got.astype(str), full.astype(str)):
                out.append(str(c))
        return out

    return reads


_WARNED: set[tuple[str, ...]] = set()


def _warn_read_ids(schema: FeatureSchema, where: str) -> None:
    """One line on standard error, once per process and spec, for row ids the model reads."""
    import sys

    read = tuple(i for i in schema.ids if i in schema.names)
    if not read or (where, *read) in _WARNED:
        return
    _WARNED.add((where, *read))
    sys.stderr.write(
        f"warning: the model was trained on the row id(s) {list(read)}: its output may depend "
        "on them; they stay model inputs, frozen (no attack changes them), and gateway clients "
        "must send them\n")


def _smoke(target: Target, X: Any) -> None:
    """Fail early, with a clear message, when the model cannot read the data."""
    head = X.iloc[:2] if isinstance(X, pd.DataFrame) else X[:2]
    try:
        target.predict(head)
    except TargetError:
        raise
    except Exception as exc:
        from finmlsec.datasets.schema_infer import numbers_as_text

        hint = ""
        if isinstance(X, pd.DataFrame):
            found = numbers_as_text(X)
            if found:
                hint = ("; the data holds numbers written as text in " + ", ".join(
                    f"{c!r} (e.g. {e!r})" for c, e in found.items()) + ": if the model was "
                    "trained on them as numbers, give files with these columns converted the way "
                    "the training converted them")
        raise TargetError(
            f"the model cannot predict on the spec's data ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check that model: and data: "
            "describe the same inputs" + hint
        ) from None

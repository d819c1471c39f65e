"""Credit scoring: UCI Statlog (German Credit Data), 1,000 applicants, 20 attributes.

The data is vendored in ``data/german_credit.csv`` with the UCI codes (A11, A12, ...) decoded to
the readable labels of the UCI documentation and short snake_case column names; the label column
``creditability`` is ``good`` (y=1, the approved class) or ``bad`` (y=0): 700 good, 300 bad.

The schema records what an applicant can and cannot change (used by constrained evasion) and which
fields are personal or confidential (used by attribute inference and by generalisation):

- immutable: ``age``, ``personal_status_sex``, ``foreign_worker``; ``age`` is also monotone
  (it only grows). The time-based fields ``employment_since`` and ``residence_since`` and the
  past ``credit_history`` cannot be changed by the applicant at application time either.
- actionable (an applicant could plausibly change them in a new application): the requested
  ``duration_months`` and ``credit_amount`` (and with them ``installment_rate``), the stated
  ``purpose``, balances in ``checking_account`` and ``savings`` (by moving money), bringing a
  guarantor or co-applicant (``other_debtors``), registering a ``telephone``, paying off other
  credits (``existing_credits``, ``other_installment_plans``), and, at a high cost, ``property``
  and ``housing``. ``job`` and ``dependents`` are not treated as actionable.
- personal: ``age``, ``personal_status_sex``, ``foreign_worker`` (who the applicant is) and
  ``credit_amount``, the dataset's "income-like" personal number (German Credit has no income
  field). Confidential: those four plus the balances ``checking_account`` and ``savings``.
- cost: the relative effort to change a field (numeric: per standard deviation; categorical: per
  change); immutable fields get a prohibitive cost in case a caller ignores ``immutable``.

Example:
    >>> from finmlsec.datasets import load
    >>> ds = load("german_credit")
    >>> ds.X.shape, ds.classes, int(ds.y.sum())
    ((1000, 20), ('bad', 'good'), 700)
    >>> ds.schema["age"].immutable, ds.schema["age"].monotone
    (True, 'increasing')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from finmlsec.datasets._files import data_file
from finmlsec.datasets.base import DATASETS, Dataset
from finmlsec.errors import DataError
from finmlsec.schema import Feature, FeatureSchema, FeatureType

LABEL = "creditability"
CLASSES = ("bad", "good")

SOURCE = (
    "UCI Machine Learning Repository: Statlog (German Credit Data), "
    "https://doi.org/10.24432/C5NC77 (categories decoded to the labels of its documentation)"
)
LICENSE = "CC BY 4.0 (Creative Commons Attribution 4.0 International)"
CITATION = (
    "Hofmann, H. (1994). Statlog (German Credit Data) [Dataset]. UCI Machine Learning Repository. "
    "https://doi.org/10.24432/C5NC77"
)

_HIGH = 100.0  # cost of changing a field that must not change


def _cat(name: str, cats: tuple[str, ...], *, cost: float, description: str, **kw: Any) -> Feature:
    return Feature(
        name=name, type=FeatureType.CATEGORICAL, categories=cats, cost=cost, description=description, **kw
    )


def _int(
    name: str, lo: int, hi: int, *, cost: float, description: str, **kw: Any
) -> Feature:
    return Feature(
        name=name, type=FeatureType.INTEGER, min=lo, max=hi, cost=cost, description=description, **kw
    )


# Categories in a natural order (ordinal fields low to high); only values that occur in the data
# (UCI's A47 "vacation" and A95 "female : single" never occur and are left out).
FEATURES: tuple[Feature, ...] = (
    _cat(
        "checking_account",
        ("no checking account", "... < 0 DM", "0 <= ... < 200 DM",
         "... >= 200 DM / salary assignments for at least 1 year"),
        cost=3.0, confidential=True, description="status of the existing checking account",
    ),
    _int("duration_months", 4, 72, cost=1.0, description="requested duration of the credit in months"),
    _cat(
        "credit_history",
        ("no credits taken/ all credits paid back duly", "all credits at this bank paid back duly",
         "existing credits paid back duly till now", "delay in paying off in the past",
         "critical account/ other credits existing (not at this bank)"),
        cost=_HIGH, actionable=False, description="past repayment behaviour",
    ),
    _cat(
        "purpose",
        ("car (new)", "car (used)", "furniture/equipment", "radio/television",
         "domestic appliances", "repairs", "education", "retraining", "business", "others"),
        cost=2.0, description="stated purpose of the credit",
    ),
    _int(
        "credit_amount", 250, 20000, cost=1.0, personal=True, confidential=True,
        description="requested amount in DM (the personal 'income-like' figure; no income field)",
    ),
    _cat(
        "savings",
        ("unknown/ no savings account", "... < 100 DM", "100 <= ... < 500 DM",
         "500 <= ... < 1000 DM", "... >= 1000 DM"),
        cost=3.0, confidential=True, description="savings account / bonds",
    ),
    _cat(
        "employment_since",
        ("unemployed", "... < 1 year", "1 <= ... < 4 years", "4 <= ... < 7 years",
         "... >= 7 years"),
        cost=_HIGH, actionable=False, description="present employment since",
    ),
    _int(
        "installment_rate", 1, 4, cost=1.0,
        description="installment rate in percentage of disposable income (UCI code 1-4)",
    ),
    _cat(
        "personal_status_sex",
        ("male : single", "male : married/widowed", "male : divorced/separated",
         "female : divorced/separated/married"),
        cost=_HIGH, immutable=True, actionable=False, personal=True, confidential=True,
        description="personal status and sex",
    ),
    _cat(
        "other_debtors", ("none", "co-applicant", "guarantor"),
        cost=4.0, description="other debtors / guarantors",
    ),
    _int(
        "residence_since", 1, 4, cost=_HIGH, actionable=False,
        description="present residence since (UCI code 1-4)",
    ),
    _cat(
        "property",
        ("unknown / no property", "car or other, not in attribute Savings account/bonds",
         "building society savings agreement/ life insurance", "real estate"),
        cost=8.0, description="most valuable property",
    ),
    _int(
        "age", 18, 75, cost=_HIGH, immutable=True, actionable=False, monotone="increasing",
        personal=True, confidential=True, description="age in years",
    ),
    _cat(
        "other_installment_plans", ("none", "bank", "stores"),
        cost=4.0, description="other installment plans",
    ),
    _cat("housing", ("rent", "own", "for free"), cost=8.0, description="housing"),
    _int(
        "existing_credits", 1, 4, cost=4.0,
        description="number of existing credits at this bank",
    ),
    _cat(
        "job",
        ("unemployed/ unskilled - non-resident", "unskilled - resident",
         "skilled employee / official",
         "management/ self-employed/ highly qualified employee/ officer"),
        cost=_HIGH, actionable=False, description="job",
    ),
    _int(
        "dependents", 1, 2, cost=_HIGH, actionable=False,
        description="number of people being liable to provide maintenance for",
    ),
    _cat(
        "telephone", ("none", "yes, registered under the customers name"),
        cost=1.0, description="telephone",
    ),
    _cat(
        "foreign_worker", ("yes", "no"),
        cost=_HIGH, immutable=True, actionable=False, personal=True, confidential=True,
        description="foreign worker",
    ),
)

SCHEMA = FeatureSchema(
    features=FEATURES, target=LABEL, classes=CLASSES, positive_class="good",
    favourable_class="good",
)


@DATASETS.register("german_credit")
def german_credit() -> Dataset:
    """The 1,000 applicants as a DataFrame of the 20 attributes, y=1 for ``good``."""
    frame = pd.read_csv(data_file("german_credit.csv"), dtype={f.name: str for f in SCHEMA.categorical()})
    if LABEL not in frame.columns:
        raise DataError(f"german_credit.csv has no label column {LABEL!r}; reinstall finmlsec")
    labels = frame.pop(LABEL)
    bad = ~labels.isin(CLASSES)
    if bad.any():
        raise DataError(
            f"german_credit.csv: label {labels[bad].iloc[0]!r} is not one of {CLASSES}"
        )
    X = frame[SCHEMA.names]
    SCHEMA.check(X)
    y = (labels.to_numpy() == "good").astype(np.int64)
    return Dataset(
        name="german_credit",
        X=X,
        y=y,
        classes=CLASSES,
        kind="tabular",
        schema=SCHEMA,
        description=(
            "Credit scoring: 1,000 loan applicants of a German bank with 20 attributes "
            "(7 numeric, 13 categorical, decoded to readable labels); 700 good and 300 bad risks."
        ),
        source=SOURCE,
        license=LICENSE,
        citation=CITATION,
        extra={"positive_class": "good", "label_column": LABEL},
    )

"""A feature schema read off a user's own data, with the reasons a reviewer needs.

:func:`infer_schema` looks at every column of a DataFrame (as pandas reads the CSV the model was
trained on) and returns the :class:`~finmlsec.schema.FeatureSchema` plus one note per
field saying what was seen and what to review: integer columns with few levels (possibly coded
categories), high-cardinality text (kept as ``text``: never changed by an attack), missing values
(``nullable: true``), fields whose name looks personal (suggested ``personal`` and
``immutable``), identifiers. :func:`to_yaml` writes it as a commented YAML file, which is what
``finmlsec schema infer DATA.csv --label COL`` prints.

Works with the string dtype of pandas 3 as with the ``object`` columns of pandas 2.

Example:
    >>> import numpy as np, pandas as pd
    >>> X = pd.DataFrame({"age": [30, 41, 52, 63], "purpose": [1, 2, 1, 3],
    ...                   "income": [5.0, np.nan, 7.5, 6.1], "job": ["a", "b", "c", None]})
    >>> inf = infer_schema(X)
    >>> [(f.name, f.type.value, f.dtype, f.nullable) for f in inf.schema.features]
    [('age', 'integer', 'int64', False), ('purpose', 'integer', 'int64', False), ('income', 'numeric', 'float64', True), ('job', 'categorical', 'object', True)]
    >>> inf.schema["age"].personal, inf.schema["age"].immutable
    (True, True)
    >>> "possible category" in inf.notes["purpose"]
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.errors import DataError
from finmlsec.schema import Feature, FeatureSchema

#: A number column whose values are whole but for at most this share (and at most
#: :data:`FEW_LEVELS` whole levels) is flagged: codes with a stray value, often a mean imputed
#: for a missing code.
STRAY_SHARE = 0.01


def _nearly_whole(arr: np.ndarray) -> list[str]:
    """The note for a number column of few whole levels and a few values that are not (R's
    ``Ecdat::Hmda`` credit scores: codes 1-6 and one 2.1164, the column's mean imputed for a
    missing code), else nothing.

    Example:
        >>> _nearly_whole(np.array([1.0] * 300 + [2.0] * 200 + [2.1164]))[0][:52]
        'possible category: 2 whole levels and 1 value(s) tha'
        >>> _nearly_whole(np.array([0.5, 1.5, 2.0])), _nearly_whole(np.arange(40.0))
        ([], [])
    """
    if not arr.size:
        return []
    whole = arr == np.round(arr)
    stray = arr[~whole]
    levels = np.unique(arr[whole])
    if not stray.size or stray.size > STRAY_SHARE * arr.size or not 1 < levels.size <= FEW_LEVELS:
        return []
    shown = ", ".join(f"{v:.6g}" for v in np.unique(stray)[:3])
    return [f"possible category: {levels.size} whole levels and {stray.size} value(s) that are "
            f"not ({shown}: a mean imputed for a missing code?); if these are codes, the stray "
            "value(s) stand for missing cells: review the source before declaring the codes"]


#: Integer columns with at most this many distinct values are flagged as possible categories.
FEW_LEVELS = 12
#: Text columns with more distinct values than this (or than half the rows) are kept as text.
MAX_CATEGORIES = 50

_PERSONAL = re.compile(
    r"(^|_)(age|sex|gender|birth|dob|born|race|ethnic\w*|nationality|citizen\w*|marital|religion|"
    r"name|surname|address|zip|postcode|postal|phone|email|ssn|national_id|disab\w*)(_|$)",
    re.IGNORECASE)


#: A column with at least this share of missing cells is flagged as mostly missing.
MOSTLY_MISSING = 0.9
#: a positive (unfavourable) class rarer than this gets a note asking for the bank's cut-off
#: (``model.decision_threshold``): at 0.5 a model of such data often decides alike for everyone
RARE_POSITIVE = 0.1
#: A text column whose values parse as numbers (or dates) in at least this share is flagged.
AS_TEXT = 0.95
#: Text values that usually stand for a missing value.
MISSING_MARKERS = frozenset({"unknown", "?", "na", "n/a", "none", "null", "-", "missing", "",
                             "ignore", "unk", "not available", "not known"})
#: A coded value ending in such a word (``emp_unk``, ``status-unknown``, ``status unknown``) may
#: mark one too: one token and the word. A longer phrase ending in it is free text (a job title
#: ``senior vp operations na``), not a code.
_CODED_MISSING = re.compile(r"^\S+[_\-\s](?:unk|unknown|missing|na|none)$")
#: Names a data frame library gives a row-number column: pandas ``Unnamed: 0`` (an unnamed
#: index written by ``to_csv``), R's ``rownames``/``row.names``, readr's ``...1``; ``X`` (R's
#: ``read.csv`` of such a file) and ``index`` only with a running index.
_ROW_NAMES = re.compile(r"^(unnamed:\s*\d+|rownames|row\.names|\.\.\.\d+|)$", re.IGNORECASE)
_ROW_NAMES_WEAK = re.compile(r"^(x|index|row|row_?(id|no|num|number|nr))$", re.IGNORECASE)
#: Names of identifiers: ``id``, ``loan_id``, ``customer-id``, ``LoanID``, ``uuid``.
_ID_NAME = re.compile(r"(^|[_.\s-])(id|uuid|guid)$|^id[_.\s-]", re.IGNORECASE)
_ID_CAMEL = re.compile(r"[a-z](Id|ID)$")
#: An id-like name needs at least this share of distinct values to be taken for an identifier.
ID_UNIQUE = 0.95
_DATE_FORMATS = ("%b-%Y", "%Y-%m", "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d")
_NUMBER = re.compile(r"^\s*[-+]?[$€£¥]?\s*[-+]?[\d,]*\.?\d+\s*(%|[a-zA-Z ]{0,12})$")


def _share_numbers(texts: pd.Series) -> tuple[float, str]:
    """The share of ``texts`` that are numbers written with a currency sign, thousands
    separators, a percent sign or a unit word (``'$1,250.00'``, ``'13.56%'``, ``' 36 months'``),
    and one such value."""
    if texts.empty:
        return 0.0, ""
    hit = texts.str.match(_NUMBER) & texts.str.contains(r"\d", regex=True)
    return float(hit.mean()), (str(texts[hit].iloc[0]) if bool(hit.any()) else "")


def numbers_as_text(X: pd.DataFrame) -> dict[str, str]:
    """The text columns of ``X`` that hold numbers written as text (``'13.56%'``,
    ``'$1,250.00'``), each with one of its values.

    Example:
        >>> numbers_as_text(pd.DataFrame({"rate": ["13.56%", "7.10%"], "grade": ["A", "B"]}))
        {'rate': '13.56%'}
    """
    out: dict[str, str] = {}
    for name in X.columns:
        col = X[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        texts = col.dropna().astype(str).str.strip()
        share, example = _share_numbers(texts)
        if share >= AS_TEXT:
            out[str(name)] = example
    return out


def _running_index(col: pd.Series) -> tuple[bool, bool]:
    """(whole numbers forming one run of consecutive integers, each once; and in file order)."""
    if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
        num = pd.to_numeric(col, errors="coerce")
        if num.isna().any():
            return False, False
        col = num
    if col.isna().any() or len(col) <= FEW_LEVELS:
        return False, False
    arr = col.to_numpy(dtype=float)
    if not np.all(arr == np.round(arr)):
        return False, False
    run = bool(arr.max() - arr.min() + 1 == len(arr) and len(np.unique(arr)) == len(arr))
    return run, run and bool(np.all(np.diff(arr) == 1))


def row_ids(X: pd.DataFrame) -> dict[str, str]:
    """The columns of ``X`` that identify rows rather than describe them, each with the reason:
    a row-number column a library wrote (``Unnamed: 0``, ``rownames``, ``...1``, ``X``) whose
    every value is distinct, an id-like name (``id``, ``loan_id``, ``CustomerID``) with (nearly)
    every value distinct and whole numbers or text, or any integer column counting the rows
    1, 2, 3... in file order. A number that merely happens to be distinct in every row (an
    income, an amount) is not one: its name is not an id's and it does not count the rows.

    Example:
        >>> X = pd.DataFrame({"Unnamed: 0": range(20), "loan_id": [f"L{i:03d}" for i in range(20)],
        ...                   "income": np.linspace(1000.5, 9000.5, 20), "age": [30] * 20})
        >>> sorted(row_ids(X))
        ['Unnamed: 0', 'loan_id']
    """
    out: dict[str, str] = {}
    n = len(X)
    if n <= FEW_LEVELS:
        return out
    for name in X.columns:
        col, key = X[name], str(name)
        values = col.dropna()
        if values.empty or pd.api.types.is_bool_dtype(col):
            continue
        share = values.nunique() / n
        numeric = pd.api.types.is_numeric_dtype(col)
        named = bool(_ROW_NAMES.match(key) or _ROW_NAMES_WEAK.match(key))
        run, counting = _running_index(col) if numeric or named else (False, False)
        whole = not numeric or bool(np.all(values.to_numpy(dtype=float)
                                           == np.round(values.to_numpy(dtype=float))))
        what = (f"counts the rows {_num(values.min())}..{_num(values.max())}" if counting else
                "a run of consecutive integers, each once" if run else
                f"{share:.1%} of rows distinct")
        if _ROW_NAMES.match(key) and share >= 0.99 or _ROW_NAMES_WEAK.match(key) and run:
            out[key] = f"a row-number column ({what})"
        elif (_ID_NAME.search(key) or _ID_CAMEL.search(key)) and share >= ID_UNIQUE and whole:
            out[key] = f"an identifier's name ({what})"
        elif counting and numeric:
            out[key] = f"a running index ({what})"
    if len(out) == X.shape[1]:
        return {}  # every column an id: leave the decision to the reviewer
    return out


def _share_dates(texts: pd.Series) -> float:
    """The largest share of ``texts`` that one of the usual date formats parses."""
    if texts.empty or not texts.str.contains(r"\d", regex=True).any():
        return 0.0
    sample = texts.iloc[:500]
    best = 0.0
    for fmt in _DATE_FORMATS:
        parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
        best = max(best, float(parsed.notna().mean()))
    return best


def _text_notes(texts: pd.Series) -> list[str]:
    """What a reviewer should know about a text column: numbers written as text, missing
    markers."""
    out: list[str] = []
    share, example = _share_numbers(texts.str.strip().where(lambda t: t != "", texts))
    if share >= AS_TEXT and not pd.to_numeric(texts, errors="coerce").notna().all():
        out.append(f"numbers written as text (e.g. {example!r}): the model receives the text as "
                   "the file has it, and an attack changes it only as a category or not at "
                   "all; if the model reads numbers, give files with the column converted the "
                   "way the pipeline converts it (train, test, population and data.path)")
    low = texts.str.strip().str.lower()
    markers = texts[low.isin(MISSING_MARKERS) | low.str.contains(_CODED_MISSING)]
    if len(markers):
        top = markers.value_counts()
        out.append(f"{top.index[0]!r} in {int(top.iloc[0])} row(s): a missing-value marker? "
                   "the model sees it as a value; keep it as one if the model was trained so, "
                   "else write the cells empty and declare nullable")
    return out


@dataclass(frozen=True)
class Inferred:
    """An inferred schema and, per field, what was seen and what to review."""

    schema: FeatureSchema
    notes: dict[str, str] = field(default_factory=dict)
    header: tuple[str, ...] = ()
    #: Each row id (``schema.ids``) as the field it would be, for the reviewer who keeps it.
    id_features: dict[str, Feature] = field(default_factory=dict)


def column_dtype(col: pd.Series) -> str:
    """The dtype a model trained on ``col`` saw (text of any string dtype: ``object``)."""
    if pd.api.types.is_bool_dtype(col):
        return "bool"
    if pd.api.types.is_numeric_dtype(col):
        return str(col.dtype)
    return "object"


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


def infer_schema(
    X: pd.DataFrame, *, y: Any = None, label: str | None = None, favourable: str | None = None,
    integer: Sequence[str] = (), personal: Sequence[str] = (), immutable: Sequence[str] = (),
    ids: bool = True,
) -> Inferred:
    """The schema of ``X`` (see the module docstring); ``y`` and ``label``: the labels and their
    column name (they give ``classes``, ``target``, ``favourable_class`` and ``positive_class``:
    with two classes, the one that is not favourable). ``ids``: row-id columns
    (:func:`row_ids`) go to the schema's ``ids``, not its features; the field each would be is
    in ``Inferred.id_features``."""
    if not isinstance(X, pd.DataFrame) or X.shape[1] == 0:
        raise DataError("schema inference needs a table with at least one column")
    found = row_ids(X) if ids else {}
    feats: list[Feature] = []
    notes: dict[str, str] = {}
    n = len(X)
    for name in X.columns:
        col = X[name]
        key = str(name)
        missing = int(col.isna().sum())
        values = col.dropna()
        levels = int(values.nunique())
        say = [f"{column_dtype(col)}, {levels} distinct value(s)"]
        if missing:
            say.append(f"{missing} missing ({missing / max(n, 1):.1%}): nullable")
        looks_personal = bool(_PERSONAL.search(key))
        kw: dict[str, Any] = {
            "name": key, "dtype": column_dtype(col), "nullable": missing > 0,
            "personal": key in personal or looks_personal,
            "immutable": key in immutable or looks_personal,
        }
        if looks_personal and key not in personal:
            say.append("name looks personal: suggested personal and immutable (review)")
        if levels == 1:
            say.append("one value in every row: carries no information (drop it if the model "
                       "does not read it)")
        if n and missing / n >= MOSTLY_MISSING:
            say.append("mostly missing: a model sees almost nothing of it")
        if pd.api.types.is_bool_dtype(col):
            kw["type"] = "binary"
        elif pd.api.types.is_numeric_dtype(col):
            arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            whole = bool(arr.size) and bool(np.all(arr == np.round(arr)))
            if key in integer or pd.api.types.is_integer_dtype(col) or whole:
                kw["type"] = "binary" if set(np.unique(arr)) <= {0.0, 1.0} and levels == 2 \
                    else "integer"
                if kw["type"] == "integer" and 1 < levels <= FEW_LEVELS:
                    say.append(f"possible category: only {levels} levels (integer codes?); "
                               "declare type: categorical with the codes as categories if they "
                               "have no order (the model still gets integers: dtype)")
                if levels == n and n > FEW_LEVELS and key not in found:
                    kw["immutable"] = True
                    say.append("every value distinct: an identifier? set immutable; remove it "
                               "if the model does not read it")
            else:
                kw["type"] = "numeric"
                say += _nearly_whole(arr)
            if arr.size and kw["type"] != "binary":
                kw.update(min=_num(arr.min()), max=_num(arr.max()))
        else:
            texts = values.astype(str)
            say += _text_notes(texts)
            if _share_dates(texts) >= AS_TEXT:
                kw["immutable"] = True
                say.append("dates: set immutable (an applicant cannot change them); the model "
                           "receives them as text, as the file has them")
            if levels <= MAX_CATEGORIES:
                kw.update(type="categorical", categories=tuple(sorted(texts.unique())))
            else:
                kw.update(type="text", immutable=True)
                say.append(f"high-cardinality text ({levels} levels): kept as text, never "
                           "changed by an attack; encode or drop it if the model does not read "
                           "it as is")
        feats.append(Feature(**kw))
        notes[key] = "; ".join(say)
    id_feats = {f.name: f for f in feats if f.name in found}
    feats = [f for f in feats if f.name not in found]
    for key, why in found.items():
        notes[key] = f"{why}: a row id, not a feature; {notes[key]}"
    extra: dict[str, Any] = {"ids": tuple(found)} if found else {}
    header: list[str] = []
    if y is not None:
        classes = sorted({str(v) for v in pd.Series(y).dropna()})
        extra.update(target=label, classes=tuple(classes))
        counts = pd.Series(y).astype(str).value_counts()
        header.append("labels: " + ", ".join(f"{c} {counts.get(c, 0) / max(n, 1):.1%}"
                                             for c in classes))
        if favourable is not None:
            if favourable not in classes:
                raise DataError(f"--favourable {favourable!r} is not one of the labels "
                                f"{classes}")
            extra["favourable_class"] = favourable
            if len(classes) == 2:
                extra["positive_class"] = positive = next(c for c in classes if c != favourable)
                share = float(counts.get(positive, 0)) / max(n, 1)
                if share < RARE_POSITIVE:
                    header.append(
                        f"{positive} is {share:.1%} of the labels: at its own 0.5 a model may "
                        f"decide {favourable} for everyone; give the cut-off the bank applies "
                        f"to P({positive}) as model.decision_threshold in the spec "
                        "(docs/spec.md)")
        else:
            header.append("no favourable_class: name the outcome an applicant wants "
                          "(--favourable), or evasion counts flips in either direction")
    return Inferred(FeatureSchema(features=tuple(feats), **extra), notes, tuple(header),
                    id_feats)


def _flow(f: Feature) -> str:
    """``f`` as a one-line YAML entry."""
    import yaml

    d = f.model_dump(mode="json", exclude_defaults=True)
    d = {"name": f.name, "type": f.type.value, **{k: v for k, v in d.items()
                                                  if k not in ("name", "type")}}
    return "- " + yaml.safe_dump(d, default_flow_style=True, width=10_000, sort_keys=False,
                                 allow_unicode=True).strip()


def to_yaml(inferred: Inferred, *, source: str = "") -> str:
    """The schema as YAML, with a comment above each field (what was seen, what to review)."""
    import yaml

    schema = inferred.schema
    lines = [
        f"# Feature schema inferred by `finmlsec schema infer`{' from ' + source if source else ''}.",
        "# Review every field: types, ranges and categories come from the data; `immutable`,",
        "# `actionable`, `monotone`, `cost`, `personal` and `derived` are yours to decide",
        "# (docs/spec.md documents every key).",
    ]
    lines += [f"# {h}" for h in inferred.header]
    top = schema.model_dump(mode="json", exclude_none=True, exclude={"features", "ids"})
    if top:
        lines.append(yaml.safe_dump(top, sort_keys=False, allow_unicode=True).rstrip())
    if schema.ids:
        lines += [
            "# Row ids, left out of the model's input: each identifies a row (a row number or an",
            "# id, distinct in every row), so a model reading one learns nothing general and can",
            "# leak who was in its training data. The scan and the gateway drop them; a model",
            "# trained with one still gets it, frozen, with a warning. To make one a feature,",
            "# remove it here and add its commented entry under features.",
            "ids:"]
        for name in schema.ids:
            lines.append(f"  # {name}: {inferred.notes.get(name, '')}")
            lines.append("  " + yaml.safe_dump([name], allow_unicode=True, width=1000).rstrip())
            f = inferred.id_features.get(name)
            if f is not None:
                lines.append("  #   as a feature: " + _flow(f))
    lines.append("features:")
    for f in schema.features:
        lines.append(f"  # {f.name}: {inferred.notes.get(f.name, '')}")
        d = f.model_dump(mode="json", exclude_defaults=True)
        d = {"name": f.name, "type": f.type.value, **{k: v for k, v in d.items()
                                                      if k not in ("name", "type")}}
        body = yaml.safe_dump([d], sort_keys=False, allow_unicode=True, width=100).rstrip()
        lines += ["  " + ln for ln in body.splitlines()]
    return "\n".join(lines) + "\n"

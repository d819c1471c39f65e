"""Optimised poisoning of linear models (``poisoning.optimal_linear``).

After Biggio et al. (2012) and Mei and Zhu (2015): the attacker adds ``fraction`` of poisoned
records and moves them, by gradient ascent, to where they most increase the loss of the retrained
model on the attacker's validation data. The training problem is L2-regularised logistic
regression on an encoding of the records (one-hot categories, standardised numbers); the gradient
of the validation loss with respect to a poison point goes through the optimality condition of
training (implicit differentiation: d theta / d x_p = -H^-1 d grad / d x_p). Points start as
label-flipped copies of validation records; by default only their numeric fields move (their
categories stay those of the starting record, so no rounding undoes the optimisation); after the
ascent they are decoded to valid records (numbers clipped to the range and rounded) and
the model generator's own algorithm (``model_factory``) is retrained on the poisoned data.
``init_accuracy_drop`` reports the same number of plain label-flipped copies, for comparison.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.attacks.base import AttackData, Labeled
    >>> rng = np.random.default_rng(1)
    >>> X = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    >>> y = (X.a + 0.5 * X.b > 0).astype(int).to_numpy()
    >>> data = AttackData(train=Labeled(X[:300], y[:300]), test=Labeled(X[300:], y[300:]),
    ...                   model_factory=LogisticRegression)
    >>> r = OptimalLinearPoisoning(fraction=0.1, iterations=30).run(None, data)
    >>> r.metrics["accuracy_drop"] > r.metrics["init_accuracy_drop"]
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from finmlsec.arrays import concat_rows
from finmlsec.attacks.base import ATTACKS, AttackData, Meter, Outcome
from finmlsec.attacks.evasion_common import check_positive
from finmlsec.attacks.poisoning import _PoisonBase, fit, poison_result
from finmlsec.errors import ConfigError
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle


class LinearCodec:
    """Records <-> real vectors: one-hot categories, standardised numbers (bounds kept; a
    missing number is encoded as the mean). Free text and derived fields take no coordinates:
    a decoded record keeps the text of its starting record and recomputes derived fields."""

    def __init__(self, X: Any, schema: FeatureSchema | None) -> None:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=float)).rename(columns=str)
        self.columns = list(X.columns)
        self.dtypes = {c: X[c].dtype for c in self.columns}
        self.frame = True
        self.blocks: list[tuple[str, str, Any]] = []  # (column, kind, info)
        self.schema = schema
        for c in self.columns:
            f = schema[c] if schema is not None and c in schema.names else None
            if f is not None and f.type == FeatureType.CATEGORICAL:
                reps = {str(v): v for v in pd.unique(X[c].dropna())}
                cats = [reps.get(k, k) for k in (f.categories or ())]
                self.blocks.append((c, "cat", cats))
                continue
            col = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float)
            text = (f is not None and f.type == FeatureType.TEXT) or (
                X[c].notna().any() and np.isnan(col[X[c].notna().to_numpy()]).any())
            if text or (f is not None and f.derived is not None) or np.isnan(col).all():
                self.blocks.append((c, "keep", None))
                continue
            lo = f.min if f is not None and f.min is not None else float(np.nanmin(col))
            hi = f.max if f is not None and f.max is not None else float(np.nanmax(col))
            integer = f is not None and f.type in (FeatureType.INTEGER, FeatureType.BINARY)
            mu, sd = float(np.nanmean(col)), float(np.nanstd(col)) or 1.0
            self.blocks.append((c, "num", (mu, sd, lo, hi, integer)))

    def encode(self, X: Any) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=float), columns=self.columns)
        parts = []
        for c, kind, info in self.blocks:
            if kind == "cat":
                s = X[c].astype(str).to_numpy()
                parts.append((s[:, None] == np.array([str(v) for v in info])[None]).astype(float))
            elif kind == "num":
                mu, sd = info[0], info[1]
                z = (pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float) - mu) / sd
                parts.append(np.nan_to_num(z, nan=0.0)[:, None])
        return np.hstack(parts) if parts else np.zeros((len(X), 0))

    def numeric_mask(self) -> np.ndarray:
        """1 for the columns of numeric fields, 0 for one-hot columns."""
        return np.concatenate([np.zeros(len(info)) if kind == "cat" else np.ones(1)
                               for _, kind, info in self.blocks if kind != "keep"])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = [], []
        for _, kind, info in self.blocks:
            if kind == "cat":
                lo += [0.0] * len(info)
                hi += [1.0] * len(info)
            elif kind == "num":
                mu, sd, a, b, _ = info
                lo.append((a - mu) / sd)
                hi.append((b - mu) / sd)
        return np.array(lo), np.array(hi)

    def decode(self, E: np.ndarray, base: pd.DataFrame | None = None) -> pd.DataFrame:
        """Records from vectors; fields without coordinates (text) are taken from ``base`` (the
        starting records, row for row) and derived fields recomputed from their sources."""
        cols: dict[str, Any] = {}
        k = 0
        for c, kind, info in self.blocks:
            if kind == "keep":
                cols[c] = (base[c].to_numpy() if base is not None
                           else np.full(len(E), np.nan, dtype=object))
            elif kind == "cat":
                block = E[:, k: k + len(info)]
                cols[c] = np.array(info, dtype=object)[np.argmax(block, axis=1)]
                k += len(info)
            else:
                mu, sd, a, b, integer = info
                v = np.clip(E[:, k] * sd + mu, a, b)
                if integer or pd.api.types.is_integer_dtype(self.dtypes[c]):
                    v = np.round(v)
                cols[c] = v.astype(self.dtypes[c]) if not pd.api.types.is_object_dtype(self.dtypes[c]) else v
                k += 1
        out = pd.DataFrame(cols)[self.columns]
        return self.schema.derive(out) if self.schema is not None else out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def fit_logistic(Phi: np.ndarray, y: np.ndarray, lam: float, theta: np.ndarray | None = None,
                 steps: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """L2-regularised logistic regression by Newton's method; Phi has a trailing column of ones.
    Returns the parameters and the Hessian of the training objective at them."""
    d = Phi.shape[1]
    reg = np.full(d, lam)
    reg[-1] = 1e-6
    th = np.zeros(d) if theta is None else theta.copy()
    H = np.eye(d)
    for _ in range(steps):
        s = _sigmoid(Phi @ th)
        g = Phi.T @ (s - y) + reg * th
        H = (Phi * (s * (1 - s))[:, None]).T @ Phi + np.diag(reg)
        step = np.linalg.solve(H, g)
        th -= step
        if np.abs(step).max() < 1e-7:
            break
    return th, H


@ATTACKS.register("poisoning.optimal_linear")
class OptimalLinearPoisoning(_PoisonBase):
    """Gradient-ascent poisoning against a linear (logistic) learner; see the module docstring.

    Parameters: ``fraction`` (poison points added, as a share of the training size), ``C`` (the
    inverse regularisation of the attacker's linear model), ``iterations`` and ``step`` (the
    ascent, in standardised units), ``categories`` (``fixed``: categorical fields keep the
    values of the starting record and only numbers move, so the decoded points are exactly the
    optimised ones; ``relaxed``: one-hot blocks move in [0, 1] and are decoded to their largest
    entry, which loses much of the effect on German credit), ``seed``. Binary tasks only.
    """

    name: ClassVar[str] = "poisoning.optimal_linear"
    summary: ClassVar[str] = "Optimised poisoning points for linear models (Biggio; Mei and Zhu)"
    cost_rank: ClassVar[int] = 3
    strength_rank: ClassVar[int] = 3

    fraction: float = 0.1
    C: float = 1.0
    iterations: int = 50
    step: float = 1.0
    categories: str = "fixed"
    seed: int = 0

    @classmethod
    def contract_fixture(cls) -> dict[str, Any]:
        """Small parameters for the common attack contract tests."""
        return {"params": {'iterations': 8}}

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """The clean model, the poisoned one and the one on the starting points."""
        return 3.0

    def _validate(self) -> None:
        owner = type(self).__name__
        check_positive(owner, "fraction", self.fraction, hi=0.5)
        check_positive(owner, "C", self.C)
        check_positive(owner, "iterations", self.iterations, integer=True, lo=0, closed_lo=True,
                       hi=10_000)
        check_positive(owner, "step", self.step)
        if self.categories not in ("fixed", "relaxed"):
            raise ConfigError(
                f"The 'categories' parameter of {owner} must be 'fixed' or 'relaxed'. Got "
                f"{self.categories!r} instead."
            )

    def _attack(self, oracle: Oracle | None, data: AttackData, meter: Meter) -> Outcome:
        assert data.train is not None and data.test is not None and data.train.y is not None
        assert data.test.y is not None and data.model_factory is not None
        rng = np.random.default_rng(self.seed)
        Xtr, ytr = data.train.X, np.asarray(data.train.y)
        labels = np.unique(ytr)
        if len(labels) != 2:
            raise ConfigError(
                f"poisoning.optimal_linear handles binary tasks only; the training labels have "
                f"{len(labels)} classes {labels.tolist()}; use poisoning.label_flip instead"
            )
        yb = (ytr == labels[1]).astype(float)
        codec = LinearCodec(Xtr, data.schema)
        E = codec.encode(Xtr)
        lo, hi = codec.bounds()
        ones = np.ones((len(E), 1))
        Phi_tr = np.hstack([E, ones])
        if data.population is not None and data.population.y is not None:
            Xv = data.population.X
            yv = (np.asarray(data.population.y) == labels[1]).astype(float)
        else:
            Xv, yv = Xtr, yb
        Ev = codec.encode(Xv)
        Phi_v = np.hstack([Ev, np.ones((len(Ev), 1))])
        n_p = max(1, int(round(self.fraction * len(ytr))))
        src = rng.choice(len(Ev), size=n_p, replace=n_p > len(Ev))
        P, yp = Ev[src].copy(), 1.0 - yv[src]
        P0 = P.copy()
        lam = 1.0 / self.C
        self._movable = codec.numeric_mask() if self.categories == "fixed" else 1.0
        with threadpool_limits(1):  # small dense algebra: threads only contend
            P, val_loss = self._ascend(P, yp, Phi_tr, yb, Phi_v, yv, lo, hi, lam)
        start = (Xv.iloc[src].reset_index(drop=True) if isinstance(Xv, pd.DataFrame)
                 else None)
        X_p = codec.decode(P, start)
        X_init = codec.decode(P0, start)
        y_p = np.where(yp > 0.5, labels[1], labels[0]).astype(ytr.dtype)
        if not isinstance(Xtr, pd.DataFrame):
            X_p, X_init = X_p.to_numpy(), X_init.to_numpy()
        elif data.schema is not None and not data.schema.is_valid(X_p).all():
            raise ConfigError("internal: decoded poison points are not valid under the schema")
        Xte, yte = data.test.X, np.asarray(data.test.y)
        clean = fit(data.model_factory, Xtr, ytr)
        bad = fit(data.model_factory, concat_rows(Xtr, X_p), np.concatenate([ytr, y_p]))
        init = fit(data.model_factory, concat_rows(Xtr, X_init), np.concatenate([ytr, y_p]))
        acc0 = float(np.mean(clean.predict(Xte) == yte))
        acc1 = float(np.mean(bad.predict(Xte) == yte))
        acc_init = float(np.mean(init.predict(Xte) == yte))
        m = {
            "poison_fraction": n_p / (len(ytr) + n_p),
            "n_poisoned": float(n_p),
            "clean_accuracy": acc0,
            "poisoned_accuracy": acc1,
            "accuracy_drop": acc0 - acc1,
            "init_accuracy_drop": acc0 - acc_init,
            "surrogate_val_loss_start": val_loss[0] if val_loss else float("nan"),
            "surrogate_val_loss_end": val_loss[-1] if val_loss else float("nan"),
        }
        return poison_result(m, max(0.0, acc0 - acc1),
                             notes=("surrogate: L2 logistic regression on one-hot/standardised "
                                    "features; scored on the model_factory's algorithm",))

    def _ascend(self, P: np.ndarray, yp: np.ndarray, Phi_tr: np.ndarray, yb: np.ndarray,
                Phi_v: np.ndarray, yv: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                lam: float) -> tuple[np.ndarray, list[float]]:
        n_p = len(P)
        theta = None
        val_loss: list[float] = []
        for it in range(self.iterations):
            Phi = np.vstack([Phi_tr, np.hstack([P, np.ones((n_p, 1))])])
            theta, H = fit_logistic(Phi, np.concatenate([yb, yp]), lam, theta)
            sv = _sigmoid(Phi_v @ theta)
            val_loss.append(float(-np.mean(yv * np.log(sv + 1e-12)
                                           + (1 - yv) * np.log(1 - sv + 1e-12))))
            gV = Phi_v.T @ (sv - yv) / len(yv)
            v = np.linalg.solve(H, gV)
            w = theta[:-1]
            Pp = np.hstack([P, np.ones((n_p, 1))])
            sp = _sigmoid(Pp @ theta)
            grad = -((Pp @ v) * sp * (1 - sp))[:, None] * w[None] - (sp - yp)[:, None] * v[None, :-1]
            norm = np.linalg.norm(grad, axis=1, keepdims=True) + 1e-12
            eta = self.step / np.sqrt(1 + it)
            grad = grad * self._movable
            norm = np.linalg.norm(grad, axis=1, keepdims=True) + 1e-12
            P = np.clip(P + eta * grad / norm, lo, hi)
        return P, val_loss

"""Text evasion for the chatbot (``evasion.text``).

Black-box, after DeepWordBug (Gao et al. 2018) and "Bad Characters" (Boucher et al. 2022): rank
the words of an inquiry by how much deleting each lowers the model's confidence in its current
intent (label-only oracles: left to right), then perturb the most important words one at a time,
trying every operation and keeping the variant that hurts the current intent most, until the
decision changes or ``max_words`` words were touched. Operations:

* ``typo``: swap two inner letters (``balance`` -> ``blaance``);
* ``homoglyph``: replace Latin letters by look-alike Cyrillic ones (``card`` -> ``саrd``);
* ``invisible``: insert a zero-width space inside the word (looks unchanged);
* ``synonym``: a banking paraphrase from a small dictionary (``money`` -> ``funds``).

A perturbed inquiry is valid when at most ``max_words`` words changed. Homoglyphs and invisible
characters leave the text as a person reads it unchanged; :func:`normalise` (NFKC, invisible
characters removed, confusables mapped back) is the matching input screen.

Example:
    >>> perturb_word("card", "homoglyph") != "card", normalise(perturb_word("card", "homoglyph"))
    (True, 'card')
    >>> normalise("bal" + "\\u200b" + "ance")
    'balance'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar

import numpy as np

from finmlsec.attacks.base import ATTACKS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.evasion_chance import DRAWS, budgets, rated
from finmlsec.attacks.evasion_common import EvasionOutput, check_positive, resolve_class
from finmlsec.errors import ConfigError, DataError
from finmlsec.targets.oracle import Oracle

OPERATIONS = ("typo", "homoglyph", "invisible", "synonym")
HOMOGLYPHS = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440",
              "x": "\u0445", "y": "\u0443", "i": "\u0456", "s": "\u0455", "j": "\u0458"}
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
SYNONYMS = {
    "money": "funds", "card": "debit", "account": "acct", "balance": "amount",
    "transfer": "send", "send": "wire", "loan": "credit", "credit": "loan", "pay": "settle",
    "payment": "remittance", "fee": "charge", "fees": "charges", "charge": "fee",
    "address": "residence", "change": "update", "update": "modify", "lost": "missing",
    "stolen": "taken", "declined": "refused", "block": "freeze", "freeze": "lock",
    "activate": "enable", "close": "terminate", "open": "start", "interest": "yield",
    "rate": "percentage", "mortgage": "home loan", "help": "assist", "check": "see",
    "show": "display", "much": "many", "want": "wish", "need": "require", "new": "fresh",
    "bank": "branch", "cash": "notes", "atm": "cash machine", "pin": "code",
    "statement": "summary", "limit": "cap", "overdraft": "negative balance",
}
_WORD = re.compile(r"[A-Za-z]+")
_BACK = {v: k for k, v in HOMOGLYPHS.items()}


def normalise(text: str) -> str:
    """NFKC, invisible characters removed, Cyrillic look-alikes mapped back to Latin."""
    t = unicodedata.normalize("NFKC", text)
    t = "".join(ch for ch in t if ch not in INVISIBLE)
    return "".join(_BACK.get(ch, ch) for ch in t)


def perturb_word(word: str, op: str, k: int = 0) -> str:
    """One perturbation of ``word`` (``k`` picks among variants, deterministically)."""
    if op == "typo":
        if len(word) < 4:
            return word[::-1] if len(word) > 1 else word
        i = 1 + k % (len(word) - 3)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "homoglyph":
        idx = [i for i, ch in enumerate(word) if ch.lower() in HOMOGLYPHS and ch.islower()]
        if not idx:
            return word
        chars = list(word)
        for i in idx:
            chars[i] = HOMOGLYPHS[chars[i]]
        return "".join(chars)
    if op == "invisible":
        i = max(1, len(word) // 2)
        return word[:i] + INVISIBLE[k % len(INVISIBLE)] + word[i:]
    if op == "synonym":
        s = SYNONYMS.get(word.lower())
        if s is None:
            return word
        return s.capitalize() if word[:1].isupper() else s
    raise ConfigError(f"unknown text operation {op!r}; known: {list(OPERATIONS)}")


def _replace(text: str, span: tuple[int, int], new: str) -> str:
    return text[: span[0]] + new + text[span[1]:]


@ATTACKS.register("evasion.text")
class TextEvasion(Attack):
    """Character- and word-level evasion of a text classifier; see the module docstring.

    Parameters: ``max_words`` (words perturbed at most), ``operations`` (subset of ``typo``,
    ``homoglyph``, ``invisible``, ``synonym``), ``target_class`` (None: any other intent),
    ``baseline_draws`` (random changes of as many words per inquiry for the no-model baseline,
    see :mod:`finmlsec.attacks.evasion_chance`), ``seed``.

    Example:
        >>> TextEvasion(max_words=2, operations=("typo",)).operations
        ('typo',)
    """

    name: ClassVar[str] = "evasion.text"
    threat: ClassVar[str] = "induce_false_prediction"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "victims"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0015", "AML.T0043.003")
    owasp: ClassVar[tuple[str, ...]] = ("ML01",)
    summary: ClassVar[str] = "Text evasion: typos, homoglyphs, invisible characters, synonyms"
    input_kinds: ClassVar[tuple[str, ...]] = ("text",)
    cost_rank: ClassVar[int] = 2
    strength_rank: ClassVar[int] = 2
    generates: ClassVar[bool] = True

    max_words: int = 3
    operations: tuple[str, ...] = OPERATIONS
    target_class: str | int | None = None
    baseline_draws: int = DRAWS
    seed: int = 0

    def _validate(self) -> None:
        check_positive(type(self).__name__, "max_words", self.max_words, integer=True, hi=100)
        check_positive(type(self).__name__, "baseline_draws", self.baseline_draws, integer=True,
                       hi=10_000)
        bad = [op for op in self.operations if op not in OPERATIONS]
        if not self.operations or bad:
            raise ConfigError(
                f"The 'operations' parameter of TextEvasion must be a non-empty subset of "
                f"{list(OPERATIONS)}. Got {self.operations!r} instead."
            )

    def generate(self, oracle: Oracle, X: Any, y: Any = None, schema: Any = None) -> EvasionOutput:
        self._validate()
        texts = [] if hasattr(X, "columns") or getattr(X, "ndim", 1) != 1 else list(X)
        if not texts and len(X) or not all(isinstance(t, str) for t in texts):
            raise DataError("evasion.text needs a list of strings; use evasion.constrained for "
                            "tabular records or evasion.pgd for arrays")
        q0 = oracle.queries_used
        classes = np.asarray(oracle.classes_)
        goal = resolve_class(self.target_class, classes, None)
        ref = np.asarray(oracle.predict(texts)) if y is None else np.asarray(y)
        scores = "proba" in oracle.provides
        n = len(texts)
        cur = list(texts)
        spans = [[m.span() for m in _WORD.finditer(t)] for t in texts]

        def judge(batch: list[str], owners: list[int]) -> tuple[np.ndarray, np.ndarray]:
            if not batch:
                return np.zeros(0, dtype=bool), np.zeros(0)
            if scores:
                p = oracle.predict_proba(batch)
                lab = oracle.decide(p)
                col = np.searchsorted(classes, ref[owners])
                s = 1.0 - p[np.arange(len(batch)), col]
            else:
                lab = np.asarray(oracle.predict(batch))
                s = np.zeros(len(batch))
            met = lab == goal if goal is not None else lab != ref[owners]
            return np.asarray(met, dtype=bool), s

        # word importance: confidence lost when the word is deleted
        order: list[list[int]] = []
        if scores:
            batch, owners = [], []
            for i, t in enumerate(texts):
                for sp in spans[i]:
                    batch.append(_replace(t, sp, ""))
                    owners.append(i)
            _, s = judge(batch, owners)
            k = 0
            for i in range(n):
                m = len(spans[i])
                order.append(list(np.argsort(-s[k: k + m], kind="stable")))
                k += m
        else:
            order = [list(range(len(sp))) for sp in spans]
        success = np.zeros(n, dtype=bool)
        edits = np.zeros(n, dtype=int)
        best_score = np.full(n, -np.inf)
        for step in range(self.max_words):
            batch, owners, shifts = [], [], []
            for i in range(n):
                if success[i] or step >= len(order[i]):
                    continue
                w = order[i][step]
                a, b = spans[i][w]
                word = cur[i][a:b]
                for op in self.operations:
                    new = perturb_word(word, op, self.seed + step)
                    if new != word:
                        batch.append(_replace(cur[i], (a, b), new))
                        owners.append(i)
                        shifts.append(len(new) - len(word))
            if not batch:
                break
            met, s = judge(batch, owners)
            own = np.asarray(owners)
            for i in np.unique(own):
                rows = np.flatnonzero(own == i)
                pick = rows[met[rows]][0] if met[rows].any() else rows[np.argmax(s[rows])]
                if not met[pick] and scores and s[pick] <= best_score[i]:
                    continue  # this word does not help; leave it
                w = order[i][step]
                shift = shifts[pick]
                cur[i] = batch[pick]
                a, b = spans[i][w]
                spans[i] = spans[i][:w] + [(a, b + shift)] + [
                    (x + shift, z + shift) for x, z in spans[i][w + 1:]]
                edits[i] += 1
                best_score[i] = s[pick]
                success[i] = met[pick]
        valid = edits <= self.max_words
        if n:
            pred = np.asarray(oracle.predict(cur))
            success = pred == goal if goal is not None else pred != ref
        self._edits = edits
        return EvasionOutput(X_adv=cur, success=np.asarray(success, dtype=bool), valid=valid,
                             queries=oracle.queries_used - q0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        assert data.victims is not None
        texts = list(data.victims.X)
        y = data.victims.y
        goal = resolve_class(self.target_class, oracle.classes_, None)
        pred = np.asarray(oracle.predict(texts))
        if goal is not None:
            keep = pred != goal
        elif y is not None:
            ylab = np.asarray(y)
            if not np.isin(ylab, oracle.classes_).all():
                ylab = np.asarray(oracle.classes_)[ylab.astype(int)]
            keep = pred == ylab  # only inquiries the bot got right can be pushed wrong
        else:
            keep = np.ones(len(texts), dtype=bool)
        X0 = [t for t, k in zip(texts, keep, strict=True) if k]
        out = self.generate(oracle, X0, pred[keep], None)
        won = out.success & out.valid
        n = len(X0)
        m = {
            "n_victims": float(n),
            "n_already_at_goal": float((~keep).sum()),
            "success_rate": float(won.mean()) if n else 0.0,
            "validity_rate": float(out.valid.mean()) if n else 1.0,
            "mean_words_changed": float(self._edits[won].mean()) if won.any() else float("nan"),
            "invisible_to_reader_rate": float(np.mean([
                normalise(a) == normalise(b) for a, b, w in zip(out.X_adv, X0, won, strict=True)
                if w])) if won.any() else float("nan"),
            "queries_per_victim": meter.queries / n if n else 0.0,
        }
        examples = tuple(f"{a!r} -> {b!r}" for a, b, w in
                         zip(X0, out.X_adv, won, strict=True) if w)[:3]
        # the no-model baseline: as many random words, each perturbed by a random operation
        p, any_, cost = self.chance(oracle, X0, out, goal, pred[keep])
        return rated(Outcome(m["success_rate"], m, notes=examples), won, p, any_,
                     self.baseline_draws, cost)

    def chance(self, oracle: Oracle, X0: Any, out: EvasionOutput, goal: Any,
               ref: np.ndarray | None, schema: Any = None, population: Any = None,
               accept: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
        """Per inquiry, the share of ``baseline_draws`` random changes of as many words as the
        attack changed in it (a victim it left unchanged: the median over its successes;
        random distinct words, each by a random operation of ``operations``) that reach the
        goal (untargeted: leave the decision ``ref``) and pass ``accept``, whether any does, and
        the words for the cost; evaluator side (the target directly). Call it after
        :meth:`generate` on the same inquiries. See :mod:`finmlsec.attacks.evasion_chance`."""
        texts = list(X0)
        words = budgets(self._edits, np.asarray(out.success) & np.asarray(out.valid))
        target = oracle.target
        n, draws = len(texts), self.baseline_draws
        if n == 0:
            return np.zeros(0), np.zeros(0, dtype=bool), "of as many words"
        rng = np.random.default_rng([self.seed, 7717])
        batch, owners = [], []
        for i, t in enumerate(texts):
            spans = [m.span() for m in _WORD.finditer(t)]
            k = min(int(np.ceil(words[i] - 1e-9)), len(spans))
            for _ in range(draws):
                new = t
                for w in sorted(rng.choice(len(spans), size=k, replace=False), reverse=True):
                    a, b = spans[w]
                    op = self.operations[int(rng.integers(len(self.operations)))]
                    new = _replace(new, (a, b), perturb_word(t[a:b], op, int(rng.integers(8))))
                batch.append(new)
                owners.append(i)
        own = np.asarray(owners)
        pred = np.asarray(target.predict(batch))
        hit = np.asarray(pred == goal if goal is not None else pred != np.asarray(ref)[own],
                         dtype=bool)
        if accept is not None and hit.any():
            hit &= np.asarray(accept(batch), dtype=bool)
        h = hit.reshape(n, draws)
        return h.mean(axis=1), np.asarray(h.any(axis=1), dtype=bool), "of as many words"

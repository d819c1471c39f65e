"""Build ``data/bank_intents.jsonl``: the chatbot corpus written for finmlsec, reproducibly.

The templates of :mod:`finmlsec.datasets._intent_templates` are filled with slot values, then
each utterance gets one of three treatments: ``base`` (as written, sometimes lower-cased),
``polite`` (a greeting, a polite lead-in and a closing) or ``typo`` (one or two keyboard slips:
swapped, dropped, doubled or neighbouring letters). Duplicates are dropped across intents, so an
utterance has exactly one label. Same seed, same file:

    python -m finmlsec.datasets._build_intents            # rewrites the shipped file (seed 0)

Example:
    >>> rows = build(seed=0, per_intent=5)
    >>> len(rows), sorted(rows[0])
    (90, ['intent', 'template', 'text', 'variant'])
    >>> build(seed=0, per_intent=5) == rows
    True
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

from finmlsec.datasets._intent_templates import (
    GREETINGS,
    INTENTS,
    POLITE_PREFIXES,
    QUESTION_PREFIXES,
    QUESTION_WORDS,
    SLOTS,
    SUFFIXES,
)

SEED = 0
PER_INTENT = 100
VARIANTS = ("base", "polite", "typo")
_WEIGHTS = (0.35, 0.35, 0.30)
_SLOT = re.compile(r"\{(\w+)\}")
# neighbouring keys on a QWERTY keyboard, for realistic slips
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _ROWS
    for i, ch in enumerate(row)
}


def _fill(template: str, rng: random.Random) -> str:
    return _SLOT.sub(lambda m: rng.choice(SLOTS[m.group(1)]), template)


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    for _ in range(rng.choice((1, 1, 2))):
        i = rng.choice(candidates)
        w = words[i]
        j = rng.randrange(1, len(w) - 1)
        op = rng.choice(("swap", "drop", "double", "neighbour"))
        if op == "swap":
            w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        elif op == "drop":
            w = w[:j] + w[j + 1 :]
        elif op == "double":
            w = w[:j] + w[j] + w[j:]
        else:
            near = _NEIGHBOURS.get(w[j].lower(), "")
            if near:
                w = w[:j] + rng.choice(near) + w[j + 1 :]
        words[i] = w
    return " ".join(words)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _render(core: str, variant: str, rng: random.Random) -> str:
    if variant == "polite":
        words = core.split()
        if len(words) <= 3:  # a bare keyword ("lost card") takes only a greeting
            leads: tuple[str, ...] = ("",)
        elif words[0].lower() in QUESTION_WORDS:
            leads = POLITE_PREFIXES + QUESTION_PREFIXES
        else:
            leads = POLITE_PREFIXES
        lead = rng.choice(GREETINGS) + rng.choice(leads)
        if lead and not core.startswith(("I ", "I'")):
            core = core[:1].lower() + core[1:]
        text = lead + core + rng.choice(SUFFIXES)
        return _capitalise(text) if rng.random() < 0.7 else text
    if variant == "typo":
        text = _typo(core, rng) + rng.choice(("", "", "?", " pls", " plz"))
        return text.lower() if rng.random() < 0.5 else text
    text = core + rng.choice(("", "", "?", "."))
    return _capitalise(text) if rng.random() < 0.6 else text.lower()


def build(seed: int = SEED, per_intent: int = PER_INTENT) -> list[dict[str, str]]:
    """``per_intent`` distinct utterances for every intent, in intent order, for a given seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    for intent, templates in INTENTS.items():
        count, attempt = 0, 0
        while count < per_intent:
            if attempt > 200 * per_intent:
                raise RuntimeError(f"cannot find {per_intent} distinct utterances for {intent!r}")
            k = attempt % len(templates)
            attempt += 1
            variant = rng.choices(VARIANTS, weights=_WEIGHTS)[0]
            text = " ".join(_render(_fill(templates[k], rng), variant, rng).split())
            key = text.lower().strip(" ?.!")
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                {"text": text, "intent": intent, "template": f"{intent}/{k}", "variant": variant}
            )
            count += 1
    return rows


def to_jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    """Write the corpus to the path given (default: the package's ``data/bank_intents.jsonl``)."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).with_name("data") / "bank_intents.jsonl"
    rows = build()
    out.write_text(to_jsonl(rows), encoding="utf-8")
    print(f"wrote {len(rows)} utterances over {len(INTENTS)} intents to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The paper's twelve system types: set partitions of the four roles over organisations.

A partition is written as a pattern: one letter per role in the order training-data provider,
system user, model generator, model operator; equal letters mean the same organisation, letters
appear in first-use order (``"abac"``: the provider and the generator are one organisation).

Example:
    >>> len(all_patterns()), len(TYPES), len(EXCLUDED)
    (15, 12, 3)
    >>> TYPES[3].pattern, TYPES[3].reach
    ('abac', ('model_io', 'false_prediction_data'))
    >>> type_of_pattern("abbc") is None
    True
    >>> exclusion_reason("abbc")
    'the system user and the model generator are one organisation while another operates the model...'
"""

from __future__ import annotations

from dataclasses import dataclass

from finmlsec.ids import ROLE_ABBREV, ROLES

DATA: tuple[str, ...] = ("training_data", "model_io", "false_prediction_data")
"""What an attacker may reach, in the order of the paper's Table 2."""

# Fixed by the paper's text (section III.D and the use cases of section IV.B): its Table 1's
# numbering, each organisation-count group ordered lexicographically.
PAPER_NUMBERING: dict[str, int] = {
    "abcd": 1,
    "aabc": 2,
    "abac": 3,
    "abca": 4,
    "abcb": 5,
    "abcc": 6,
    "aabb": 7,
    "abab": 8,
    "abbb": 9,
    "abaa": 10,
    "aaba": 11,
    "aaaa": 12,
}

_EXCLUSION = (
    "the system user and the model generator are one organisation while another operates the "
    "model: the user, which owns the model, would have to send every prediction request to the "
    "other organisation, which the paper (section II.B) rules out as not realistically deployable"
)

_TDP, _SU, _MG, _MO = range(4)


@dataclass(frozen=True)
class SystemType:
    """One of the paper's twelve types, with the reach the rule gives in the paper's setting."""

    number: int
    pattern: str
    organisations: int
    reach: tuple[str, ...]

    def roles_by_letter(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for role, letter in zip(ROLES, self.pattern, strict=True):
            out[letter] = (*out.get(letter, ()), role)
        return out

    def describe(self) -> str:
        """E.g. ``{TDP,MG} {SU} {MO}``."""
        groups = self.roles_by_letter().values()
        return " ".join("{" + ",".join(ROLE_ABBREV[r] for r in g) + "}" for g in groups)


def all_patterns() -> list[str]:
    """The 15 set partitions of the four roles, as restricted-growth strings."""
    out: list[str] = []

    def grow(prefix: str, used: int) -> None:
        if len(prefix) == 4:
            out.append(prefix)
            return
        for k in range(used + 1):
            grow(prefix + "abcd"[k], max(used, k + 1))

    grow("", 0)
    return out


def canonical(labels: tuple[object, ...] | list[object]) -> str:
    """Pattern of any labelling of (TDP, SU, MG, MO), e.g. organisation ids."""
    first: dict[object, str] = {}
    for label in labels:
        first.setdefault(label, "abcd"[len(first)])
    return "".join(first[label] for label in labels)


def is_excluded(pattern: str) -> bool:
    """The paper's 3 excluded partitions: SU and MG together, MO elsewhere."""
    return pattern[_SU] == pattern[_MG] and pattern[_MO] != pattern[_SU]


def exclusion_reason(pattern: str) -> str | None:
    return _EXCLUSION if is_excluded(pattern) else None


def paper_reach(pattern: str) -> tuple[str, ...]:
    """The rule in the paper's setting: generators and operators are highly secure; data held by a
    provider or user is reachable unless its organisation also generates or operates."""
    secure = {pattern[_MG], pattern[_MO]}
    reach = []
    if pattern[_TDP] not in secure:
        reach.append("training_data")
    if pattern[_SU] not in secure:
        reach += ["model_io", "false_prediction_data"]
    return tuple(reach)


def type_of_pattern(pattern: str) -> int | None:
    """The paper's type number, or None for an excluded partition."""
    return None if is_excluded(pattern) else PAPER_NUMBERING[pattern]


def partition_distance(p: str, q: str) -> int:
    """Number of role pairs that are together in one pattern and apart in the other (0-6)."""
    return sum(
        (p[i] == p[j]) != (q[i] == q[j]) for i in range(4) for j in range(i + 1, 4)
    )


def _build() -> tuple[dict[int, SystemType], dict[str, str]]:
    types: dict[int, SystemType] = {}
    excluded: dict[str, str] = {}
    for pattern in all_patterns():
        if is_excluded(pattern):
            excluded[pattern] = _EXCLUSION
            continue
        number = PAPER_NUMBERING[pattern]
        types[number] = SystemType(number, pattern, len(set(pattern)), paper_reach(pattern))
    return dict(sorted(types.items())), excluded


TYPES, EXCLUDED = _build()
"""``TYPES[n]`` for n in 1..12; ``EXCLUDED`` maps the 3 excluded patterns to the paper's reason."""


def describe_pattern(pattern: str) -> str:
    groups: dict[str, list[str]] = {}
    for role, letter in zip(ROLES, pattern, strict=True):
        groups.setdefault(letter, []).append(ROLE_ABBREV[role])
    return " ".join("{" + ",".join(g) + "}" for g in groups.values())

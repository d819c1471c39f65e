"""Checks of ``scan`` options that need the spec's analysis, made before anything is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finmlsec.errors import ConfigError


def check_only_attacks(spec: Path, attacks: list[str], include_accepted: bool) -> None:
    """Raise a one-line :class:`ConfigError` when an ``--attack`` name would run no unit: its
    threat is not in the analysis of ``spec``, or the analysis accepted it and ``--all`` is
    missing."""
    if not attacks:
        return
    from finmlsec.attacks import ATTACKS
    from finmlsec.scan.plan import threats_of
    from finmlsec.spec import load_spec
    from finmlsec.threatmodel import analyze

    threats = threats_of(analyze(load_spec(spec)))
    for name in attacks:
        cls = ATTACKS.get(name)  # an unknown name: a RegistryError listing the known ones
        threat, via = getattr(cls, "threat", "?"), getattr(cls, "via", "?")
        found = [t for t in threats if t["attack"] == threat and t["via"] == via]
        if not found:
            raise ConfigError(
                f"--attack {name} realises the threat {threat} via {via}, which the analysis of "
                f"{str(spec)!r} does not list; `finmlsec analyze {spec}` shows its threats")
        if not include_accepted and all(t["decision"] == "accept" for t in found):
            reason = found[0]["reason"] or "its risk is acceptable"
            raise ConfigError(
                f"--attack {name} realises the threat {threat} via {via}, which the analysis "
                f"accepted ({reason.rstrip('.')}); add --all to attack accepted threats too")


def check_planned(store: Any, run_id: str, attacks: list[str]) -> None:
    """When ``--attack`` left the stored plan with no unit, delete that empty run and raise a
    one-line :class:`ConfigError` with the planner's reasons (e.g. a missing ``--endpoint``)."""
    if not attacks or store.units(run_id):
        return
    notes = [n for t in store.run(run_id).plan.get("threats", []) for n in t.get("notes", [])
             if any(n.startswith(f"{a} ") for a in attacks)]
    store.delete_run(run_id)
    why = "; ".join(notes) or "no threat of the analysis is realised by it"
    raise ConfigError(f"--attack {', '.join(attacks)} plans no unit of work: {why}")

"""The scan report in plain language: the first page a risk committee reads.

:func:`overview` turns a scan document (:func:`finmlsec.report.scan.scan_document`) into what was
tested, what an attacker can reach and through which organisation, the verdict per threat in words
(pass, fail, fixable, not tested) and what to do, with the organisation that must do it: the paper
assigns each countermeasure to an entity (training-data provider, model generator, model operator)
and the spec names the organisations in each role.

Example:
    >>> doc = {"run": {"spec_name": "credit", "system_type": 3, "profile": "quick"},
    ...        "summary": {"max_residual_risk": "none"}, "analysis": {}, "threats": []}
    >>> overview(doc)["title"]
    'credit'
"""

from __future__ import annotations

from typing import Any

from finmlsec.report.numbers import LEVELS, pct

ROLE_NAMES = {
    "training_data_provider": "training-data provider",
    "training_data_assembler": "training-data assembler",
    "model_generator": "model generator",
    "model_operator": "model operator",
    "system_user": "system user",
}

# What the attacker achieves, per threat, in words; {s} is the success as a percentage and
# {q} the number of queries ("" when unknown).
_DEEDS = {
    "infer_model": "could copy the model from {q}queries: attack success {s}",
    "membership": "could tell whether a given person's record was used to train the model, "
                  "with an advantage of {s} over guessing",
    "inversion": "could infer a confidential attribute of the people in the training data "
                 "({s} better than guessing)",
    "linkage": "could find given people in the shared training data by what is known of them "
               "(age, amount, ...) and read whether they are in it and their sensitive value, "
               "right on {s} of the cases a guess without the data gets wrong",
    "induce_false_prediction": "could change the model's decision by altering inputs slightly: "
                               "it succeeded on {s} of the cases tried",
    "generate_malicious_model": "could corrupt the model through the data it learns from: "
                                "attack success {s}",
    "dos": "could degrade or stop the service: attack success {s}",
}


def _orgs(analysis: dict[str, Any]) -> dict[str, str]:
    return {o["id"]: o.get("name") or o["id"] for o in analysis.get("organisations", [])}


def who(analysis: dict[str, Any], role: str) -> str:
    """``role``'s name with the organisations that hold it, e.g. ``model operator (Retail
    bank)``."""
    names = _orgs(analysis)
    holders = [names.get(o, o) for o in analysis.get("roles", {}).get(role, [])]
    label = ROLE_NAMES.get(role, role.replace("_", " "))
    return f"{label} ({', '.join(holders)})" if holders else label


def threat_name(doc: dict[str, Any], t: dict[str, Any]) -> dict[str, str]:
    """The readable name of a threat and its catalogue id: ``{"title", "via", "id"}``."""
    analysis = doc.get("analysis") or {}
    tid = f"{t['via']}.{t['attack']}"
    found = next((a for a in analysis.get("threats", []) if a.get("id") == tid), None)
    via = next((r["title"] for r in analysis.get("reach_details", []) if r["data"] == t["via"]),
               t["via"].replace("_", " "))
    title = found["title"] if found else t["attack"].replace("_", " ")
    return {"title": title, "via": via, "id": tid}


def _deed(t: dict[str, Any]) -> str:
    attack = next((a for a in t.get("attacks", []) if a.get("success") == t.get("success")), None)
    name = (attack or {}).get("name", "")
    key = ("membership" if name.startswith("membership") else
           "inversion" if name.startswith("inversion") else
           "linkage" if name.startswith("linkage") else
           "dos" if t["attack"].startswith("dos_") else t["attack"])
    q = (attack or {}).get("queries")
    m = (attack or {}).get("metrics") or {}
    if key == "infer_model" and m.get("fidelity_test") is not None \
            and m.get("fidelity_baseline") is not None:
        # the success is the lift over a copy made without querying, not the agreement
        return (f"could copy the model: a copy built from "
                f"{f'{int(q):,} ' if q is not None else ''}queries agrees with it on "
                f"{pct(m['fidelity_test'])} of test cases, against {pct(m['fidelity_baseline'])} "
                f"for a copy made without querying it (attack success: {pct(t['success'])} of "
                "that gap closed)")
    if key == "induce_false_prediction" and m.get("success_rate") is not None \
            and m.get("baseline_rate") is not None:
        # the success is the lift over random changes of the same cost, not the rate
        return (f"could change the model's decision by altering inputs slightly: it succeeded "
                f"on {pct(m['success_rate'])} of the cases tried, against "
                f"{pct(m['baseline_rate'])} for a random change of the same size made without "
                f"access to the model (attack success: {pct(t['success'])} of that gap closed)")
    text = _DEEDS.get(key, "succeeded: attack success {s}")
    return text.format(s=pct(t["success"]), q=f"{int(q):,} " if q is not None else "")


def verdict(t: dict[str, Any], appetite: str = "low") -> str:
    """``pass``, ``unconfirmed``, ``fixable``, ``fail``, ``not measured`` or ``not tested`` for
    one threat. ``unconfirmed``: within the appetite, but the measured risk is a lower bound
    (the profile left out stronger attacks, or none ran at full strength), so it is not a pass."""
    if not t.get("attacked", True):
        return "not tested"
    if t.get("success") is None:
        return "not measured"
    limit = LEVELS.index(appetite) if appetite in LEVELS else LEVELS.index("low")
    if LEVELS.index(t["risk"]) <= limit:
        return "unconfirmed" if t.get("lower_bound") else "pass"
    if t.get("best") and t["residual_risk"] in LEVELS and LEVELS.index(t["residual_risk"]) <= limit:
        return "fixable"
    return "fail"


def _countermeasure(analysis: dict[str, Any], cm: str) -> dict[str, str]:
    found = next((c for c in analysis.get("countermeasures", []) if c["id"] == cm), None)
    title = found["title"] if found else cm.replace("_", " ")
    by = found.get("by", "") if found else ""
    return {"id": cm, "title": title, "who": who(analysis, by) if by else "the system's owner"}


def _unmeasured(cm: str) -> str | None:
    """Why the analysis' countermeasure ``cm``, which the scan did not measure, is still listed
    as an action, or None when it must not be: an organisational measure (no registered defence)
    is the analysis' advice, to apply and check by review; one whose defences exist but did not
    run on this system (they do not apply to the model, or failed) is not a measured remedy; one
    whose every defence is known to mask the attack rather than remove it (the scan never
    recommends it) is left out."""
    from finmlsec.defences import DEFENCES

    classes = [(n, c) for n, c in DEFENCES.items() if getattr(c, "countermeasure", None) == cm]
    names = [n for n, _ in classes]
    if not names:
        return ("recommended by the analysis; not measured by this scan (no registered "
                "defence implements it): apply it and check it by review")
    if all(getattr(c, "masking", False) for _, c in classes):
        return None
    return (f"recommended by the analysis; not measured by this scan: its defence(s) "
            f"({', '.join(sorted(names))}) did not run on this system (see the threat's notes "
            "for why): not a measured remedy; measure it before relying on it")


def _actions(doc: dict[str, Any], t: dict[str, Any], v: str) -> list[dict[str, str]]:
    analysis = doc.get("analysis") or {}
    if v == "fixable" or (v == "fail" and t.get("best")):
        chosen = next((c for c in t["countermeasures"] if c["defences"] == t["best"]), None)
        ids = chosen["countermeasures"] if chosen else []
        return [dict(_countermeasure(analysis, cm), why=f"measured: success {pct(t['success'])} "
                     f"-> {pct(chosen['success'] if chosen else None)}") for cm in ids]
    if v == "fail":
        # only what the scan measured was tried; the others (no registered defence: governance
        # measures such as keeping confidential data out) are the analysis' advice, unmeasured
        measured = {cm for c in t.get("countermeasures", []) if c.get("success") is not None
                    for cm in c.get("countermeasures", [])}
        recommended = t.get("countermeasures_recommended", [])
        tried = ", ".join(_countermeasure(analysis, c)["title"].lower()
                          for c in recommended if c in measured) or "none"
        return [{"id": "escalate", "title": "Restrict who can reach the model or accept the "
                 "loss explicitly (no tested countermeasure was enough at an acceptable cost)",
                 "who": who(analysis, "model_operator"), "why": f"tried: {tried}"}] + [
            dict(_countermeasure(analysis, cm), why=why)
            for cm in recommended if cm not in measured
            for why in [_unmeasured(cm)] if why]
    if v == "not measured" and t.get("analysis_decision") == "mitigate":
        return [dict(_countermeasure(analysis, cm), why="decided by the analysis; not measured")
                for cm in t.get("countermeasures_recommended", [])]
    return []


def overview(doc: dict[str, Any]) -> dict[str, Any]:
    """The plain-language first page of the report of ``doc``."""
    analysis = doc.get("analysis") or {}
    run = doc["run"]
    appetite = analysis.get("risk_appetite") or "low"
    orgs = _orgs(analysis)
    reach = [{"data": r["title"], "through": [orgs.get(o, o) for o in r.get("exposed_by", [])],
              "flows": r.get("flows", [])} for r in analysis.get("reach_details", [])]
    verdicts, actions = [], []
    for t in doc["threats"]:
        v = verdict(t, appetite)
        name = threat_name(doc, t)
        if v in ("pass", "fixable", "fail"):
            words = f"An attacker {_deed(t)}."
        elif v == "unconfirmed":
            words = (f"An attacker {_deed(t)}, but this is a lower bound: "
                     f"{'; '.join(t['lower_bound'])}. Run the thorough profile before "
                     "accepting it.")
        elif v == "not tested":
            words = f"Not attacked: the analysis accepted it ({t.get('analysis_reason', '')})."
        else:
            words = "Not measured by this scan (see the technical appendix for why)."
        verdicts.append(dict(name, verdict=v, words=words, risk=t["risk"],
                             residual=t["residual_risk"]))
        for a in _actions(doc, t, v):
            actions.append(dict(a, threat=name["title"], threat_id=name["id"]))
    unmeasured = [t for t in doc["threats"]
                  if t.get("attacked", True) and t.get("success") is None
                  and t.get("analysis_decision") == "mitigate"]
    residual = doc["summary"].get("max_residual_risk", "not_measured")
    headline = residual if not unmeasured else (
        f"unknown: {len(unmeasured)} threat(s) to mitigate were not measured"
        + (f"; {residual} for the measured ones" if residual in LEVELS else ""))
    counts = {k: sum(v["verdict"] == k for v in verdicts)
              for k in ("pass", "unconfirmed", "fixable", "fail", "not measured",
                        "not tested")}
    return {
        "title": analysis.get("system") or run["spec_name"],
        "description": analysis.get("description") or "",
        "system_type": run.get("system_type"), "profile": run.get("profile"),
        "appetite": appetite, "reach": reach, "verdicts": verdicts, "actions": actions,
        "counts": counts, "headline_residual": headline,
    }

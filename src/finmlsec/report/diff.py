"""Two scan documents compared threat by threat and unit by unit (``finmlsec runs diff`` and the
dossier's changes since the previous validation)."""

from __future__ import annotations

from typing import Any


def diff_docs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Threat by threat and unit by unit: what changed from scan ``a`` to scan ``b``."""
    order = ("none", "low", "medium", "high")

    def by_key(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {f"{t['attack']}@{t['via']}": t for t in doc["threats"]}

    ta, tb = by_key(a), by_key(b)
    threats = []
    for key in list(ta) + [k for k in tb if k not in ta]:
        x, y = ta.get(key), tb.get(key)
        sa = x.get("success") if x else None
        sb = y.get("success") if y else None
        ra = x["risk"] if x else "absent"
        rb = y["risk"] if y else "absent"
        change = "same"
        if ra in order and rb in order and ra != rb:
            change = "worse" if order.index(rb) > order.index(ra) else "better"
        elif ra != rb:
            change = "changed"
        threats.append({
            "threat": key, "risk_a": ra, "risk_b": rb, "success_a": sa, "success_b": sb,
            "delta": (sb - sa) if sa is not None and sb is not None else None, "change": change,
            "residual_a": x["residual_risk"] if x else None,
            "residual_b": y["residual_risk"] if y else None,
        })
    ua = {u["id"]: u for u in a["units"]}
    units = []
    for u in b["units"]:
        v = ua.get(u["id"])
        if v and v["success"] is not None and u["success"] is not None:
            units.append({"unit": u["id"], "success_a": v["success"], "success_b": u["success"],
                          "delta": u["success"] - v["success"]})
    return {"a": a["run"]["id"], "b": b["run"]["id"], "threats": threats, "units": units,
            "worse": sum(t["change"] == "worse" for t in threats),
            "better": sum(t["change"] == "better" for t in threats)}

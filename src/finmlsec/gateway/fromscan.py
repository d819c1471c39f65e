"""``finmlsec serve --from-scan RUN``: the guard policy a stored scan recommended for its system.

The scan measures countermeasures by their registered names, at their registered defaults, and
recommends per threat the one that lowered the attack's success beyond noise at an acceptable
utility cost (``threats[].best``). Those that act on requests or answers are served here at the
level the scan measured:

- the output defences ``confidence.round``, ``confidence.truncate``, ``confidence.top_k``,
  ``confidence.label_only`` (the policy's ``output``, with the defence's default ``decimals`` or
  ``k``, as measured);
- the input screen the scan measures, ``input_screen`` (``screening``: its out-of-distribution
  detector and feature squeezing, served as the guards ``input_screen.ood`` and
  ``input_screen.squeeze`` together, a record refused when either flags it, at the defence's
  defaults; see :func:`~finmlsec.gateway.guards.build_combined_screen`), and the serving guards
  ``input_screen.ood``, ``input_screen.squeeze`` (``screening``), ``detection.prada``
  (``extraction``) and ``ratelimit.query_budget`` (``budget``, its default windows).

Anything else cannot be served online: a defence that changes how the model is trained (PATE,
DP training, robust bagging, adversarial training, data generalisation...) needs the model
retrained with it; ``confidence.noise`` and ``confidence.reverse_sigmoid`` are output defences
the gateway's policy has no mode for. Those are refused with one line naming them, never served
partly. Everything the scan did not recommend stays as the spec's secure default
(:mod:`finmlsec.gateway.defaults`).

The scan is found by run id in the result store (an id, a unique prefix or ``last``), or as a
JSON file (``finmlsec scan --json``, ``finmlsec report RUN --format json``, a dossier's
``dossier.json``), or a directory holding ``dossier.json`` or one ``*scan.json`` (``finmlsec
demo run --out DIR``).

The guards are the scan's only for the model it measured: :func:`check_model` compares the
SHA-256 of the model file the spec names now with the one the scan recorded (the run's
``options.inputs``, taken when the scan was planned; for a run stored before that was recorded,
its scan bundle in the store, or a dossier's ``inputs``: the digest the scan read where the
dossier has it, else the one taken when the dossier was written) and refuses a different file unless the operator accepts the change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finmlsec.errors import ConfigError
from finmlsec.gateway.policy import (
    BudgetPolicy,
    ExtractionPolicy,
    OutputMode,
    OutputPolicy,
    Policy,
    ScreenPolicy,
)

OUTPUT_MODES: dict[str, OutputMode] = {
    "confidence.round": "round", "confidence.truncate": "truncate",
    "confidence.top_k": "top_k", "confidence.label_only": "label_only"}
SCREENS = ("input_screen", "input_screen.ood", "input_screen.squeeze")
WHY_NOT = {
    "confidence.noise": "the gateway's output policy has no noise mode",
    "confidence.reverse_sigmoid": "the gateway's output policy has no reverse-sigmoid mode",
}


def load_scan_document(ref: str, db: str | None = None) -> dict[str, Any]:
    """The scan document ``ref`` names: a JSON file, a directory (``dossier.json`` or one
    ``*scan.json``) or a run id in the store ``db``."""
    path = Path(ref)
    if path.is_dir():
        found = [path / "dossier.json"] if (path / "dossier.json").is_file() else sorted(
            path.glob("*scan.json"))
        if len(found) != 1:
            raise ConfigError(
                f"{ref!r} holds {'no' if not found else len(found)} scan result(s) "
                f"({', '.join(p.name for p in found) or 'no dossier.json or *scan.json'}); give "
                "the JSON file or a run id")
        path = found[0]
    if path.is_file():
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the scan result {str(path)!r}: {exc}") from None
        if isinstance(doc, dict) and isinstance(doc.get("scan"), dict) and "run" in doc:
            # a dossier; its ``inputs`` were hashed when it was written
            doc = {"run": doc["run"], **doc["scan"], "dossier_inputs": doc.get("inputs")}
        if not (isinstance(doc, dict) and isinstance(doc.get("threats"), list)
                and isinstance(doc.get("run"), dict)):
            raise ConfigError(f"{str(path)!r} is not a scan result (finmlsec scan --json, "
                              "finmlsec report RUN --format json or a dossier.json)")
        return doc
    from finmlsec.report.scan import scan_document
    from finmlsec.store import Store

    store = Store.open(db)
    run = store.run(ref)  # a ConfigError naming the store when there is no such run
    doc = scan_document(run, store.units(run.id))
    bundle = run.options.get("bundle")
    if "inputs" not in run.options and isinstance(bundle, str):
        payload = store.bundle(bundle)  # a run planned before the hashes were recorded
        if payload is not None:
            from finmlsec.scan.bundle import hashes

            doc["bundle_inputs"] = hashes(payload)
    return doc


def recorded_model_hash(doc: dict[str, Any]) -> tuple[str | None, str]:
    """The SHA-256 of the model file the scan ``doc`` measured, and where it was found; None
    when the scan recorded none (a remote model, or a document from before it was recorded)."""
    inputs = (doc["run"].get("options") or {}).get("inputs")
    if isinstance(inputs, dict) and "model.path" in inputs:
        return inputs["model.path"], "recorded by the scan"
    bundled = doc.get("bundle_inputs")
    if isinstance(bundled, dict) and "model.path" in bundled:
        return bundled["model.path"], "in the scan's bundle"
    for entry in doc.get("dossier_inputs") or []:
        if isinstance(entry, dict) and entry.get("role") == "model":
            if entry.get("sha256_at_scan"):
                return entry["sha256_at_scan"], "in the dossier, as the scan read it"
            return entry.get("sha256"), "in the dossier (hashed when it was written)"
    return None, ""


def check_model(doc: dict[str, Any], spec_path: str, *, accept_change: bool = False) -> list[str]:
    """Refuse (a :class:`ConfigError`, one line) to serve with the scan ``doc``'s guards a model
    file other than the one it measured: the SHA-256 of the file ``spec_path`` names now against
    the recorded one. With ``accept_change``, or when the scan recorded no hash, the warning
    lines to print instead (none when they match)."""
    from finmlsec.spec import load_spec
    from finmlsec.spec.files import sha256_file

    run = doc["run"].get("id", "?")
    spec = load_spec(spec_path)
    if spec.model is None or spec.model.format == "remote" or spec.model.path is None:
        return []  # nothing on disk to compare: the endpoint is what the scan queried
    recorded, where = recorded_model_hash(doc)
    path = Path(spec.model.path)
    path = path if path.is_absolute() else Path(spec.source_dir) / path
    if not path.is_file():
        return []  # a model directory (or missing: loading it names the problem)
    now = sha256_file(path)
    if recorded is None:
        return [f"scan {run} recorded no hash of the model it measured: cannot check that "
                f"{str(path)!r} is that model; scan it again to record one"]
    if recorded == now:
        return []
    msg = (f"the model file {str(path)!r} (sha256 {now[:12]}...) is not the one scan {run} "
           f"measured (sha256 {recorded[:12]}..., {where})")
    if accept_change:
        return [f"{msg}; served with that scan's guards anyway (--accept-model-change)"]
    raise ConfigError(f"{msg}; scan the model being served, or pass --accept-model-change to "
                      "serve it with that scan's guards anyway")


def recommended(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(defence, threat) for every defence the scan recommended against a threat it decided to
    mitigate, in the scan's order, each defence once."""
    out: list[tuple[str, str]] = []
    for t in doc["threats"]:
        if t.get("decision") != "mitigate":
            continue
        for d in t.get("best") or []:
            if d not in [x for x, _ in out]:
                out.append((d, f"{t['attack']}@{t['via']}"))
    return out


def _defaults(name: str) -> Any:
    from finmlsec.defences import DEFENCES, GUARDS

    return (GUARDS if name in GUARDS else DEFENCES).get(name)()


def scan_policy(doc: dict[str, Any], base: Policy) -> tuple[Policy, list[str]]:
    """``base`` with the sections the scan ``doc`` recommended replaced by the measured
    configuration, and one line per guard it switched on; a :class:`ConfigError` naming every
    recommended defence that cannot be served online."""
    from finmlsec.defences import DEFENCES, GUARDS

    rec = recommended(doc)
    run = doc["run"].get("id", "?")
    refused = []
    for name, threat in rec:
        if name in OUTPUT_MODES or name in SCREENS or name in (
                "detection.prada", "ratelimit.query_budget"):
            continue
        if name in WHY_NOT:
            why = WHY_NOT[name]
        elif name in DEFENCES or name in GUARDS:
            stage = getattr((GUARDS if name in GUARDS else DEFENCES).get(name), "stage", "?")
            why = (f"a {stage}-stage defence: the model must be retrained with it, then served")
        else:
            why = "not a registered defence"
        refused.append(f"{name} (against {threat}: {why})")
    screens = [n for n, _ in rec if n in SCREENS]
    outputs = [n for n, _ in rec if n in OUTPUT_MODES]
    if len(screens) > 1:
        refused.append(f"{' and '.join(screens)} together (the gateway serves one screen; "
                       "input_screen is the two guards combined)")
    if len(outputs) > 1:
        refused.append(f"{' and '.join(outputs)} together (the gateway has one output defence)")
    if refused:
        raise ConfigError(
            f"scan {run} recommended what cannot be served online: {'; '.join(refused)}; serve "
            "with --policy (or retrain the model with it and scan again)")
    on: list[str] = []
    upd: dict[str, Any] = {}
    for name, threat in rec:
        why = f"recommended by scan {run} against {threat}"
        if name in OUTPUT_MODES:
            d = _defaults(name)
            o = OutputPolicy(mode=OUTPUT_MODES[name], decimals=getattr(d, "decimals", 2),
                             k=getattr(d, "k", 1))
            upd["output"] = o
            level = (f" to {o.decimals} decimals" if o.mode in ("round", "truncate") else
                     f", top {o.k}" if o.mode == "top_k" else "")
            on.append(f"output: {name}{level} ({why})")
        elif name in SCREENS:
            upd["screening"] = ScreenPolicy(enabled=True, defence=name,
                                            params={"random_state": 0}
                                            if "random_state" in _defaults(name).get_params()
                                            else {})
            what = (" (out-of-distribution detector and feature squeezing, a record refused "
                    "when either flags it)" if name == "input_screen" else "")
            on.append(f"screening: {name}{what} at its measured defaults ({why})")
        elif name == "detection.prada":
            upd["extraction"] = (base.extraction if base.extraction.enabled
                                 else ExtractionPolicy(enabled=True))
            on.append(f"extraction: PRADA ({why})")
        else:  # ratelimit.query_budget, at the windows the scan measured
            q = _defaults(name)
            upd["budget"] = BudgetPolicy(**{
                **base.budget.model_dump(), "per_minute": q.per_minute,
                "per_day": q.per_day or base.budget.per_day,
                "lifetime": q.lifetime or base.budget.lifetime})
            on.append(f"budget: {q.per_minute} records/minute per key ({why})")
    return base.model_copy(update=upd), on

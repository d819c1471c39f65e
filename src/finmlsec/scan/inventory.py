"""A model inventory: the YAML file ``finmlsec scan INVENTORY.yaml`` scans as one portfolio.

The top-level key ``systems`` lists the systems; each is a spec path (relative to the inventory
file), or an entry that names a spec and adds options, or a registry entry: a spec whose ``model``
(e.g. ``uri: models:/NAME/VERSION``), ``data`` or any other top-level key of a spec is given in
the inventory, on top of a base spec (``spec:``) or without one. ``docs/scan.md`` documents the
schema. Every mistake is a :class:`~finmlsec.errors.SpecError` naming the file, the YAML path and
line (exit 2, one line).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "inv.yaml").write_text("systems: [{spce: a.yaml}]")
    >>> load_inventory(d / "inv.yaml")
    Traceback (most recent call last):
    ...
    finmlsec.errors.SpecError: ...inv.yaml: systems[0].spce (line 1): unknown key 'spce' (did you mean 'spec'?); remove it or fix its spelling
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finmlsec.errors import SpecError

Profile = Literal["quick", "standard", "thorough"]
#: the keys of a spec an inventory entry may give (replacing the base spec's)
SPEC_KEYS = ("usecase", "name", "description", "organisations", "roles", "stakes",
             "deployed_countermeasures", "model", "data")
_STRICT = ConfigDict(extra="forbid", frozen=True)


class Options(BaseModel):
    """How a system is scanned (inventory-wide under ``defaults``, or per system)."""

    model_config = _STRICT

    profile: Profile | None = None
    seed: int | None = None
    #: only these registered attacks / defences (``--attack`` / ``--defence``)
    attacks: tuple[str, ...] | None = None
    defences: tuple[str, ...] | None = None
    #: load pickled models (``--trust-pickle``) for this system
    trust_pickle: bool | None = None


class Entry(Options):
    """One system of the inventory."""

    #: the id of the system in the portfolio (default: the spec's directory or file name)
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    #: the spec path, relative to the inventory file
    spec: str | None = None
    #: a shipped use case whose organisations, roles and stakes the system takes
    usecase: str | None = None
    name: str | None = None
    description: str | None = None
    organisations: list[Any] | None = None
    roles: dict[str, Any] | None = None
    stakes: dict[str, Any] | None = None
    deployed_countermeasures: list[str] | None = None
    model: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


class InventoryFile(BaseModel):
    model_config = _STRICT

    name: str | None = None
    description: str | None = None
    defaults: Options = Options()
    systems: list[Entry | str] = Field(min_length=1)


@dataclass(frozen=True)
class System:
    """A resolved system: the spec file to scan and how."""

    id: str
    spec_path: str
    profile: str
    seed: int
    attacks: tuple[str, ...] = ()
    defences: tuple[str, ...] = ()
    trust_pickle: bool = False
    model_uri: str | None = None
    generated: bool = False

    def entry(self) -> dict[str, Any]:
        return {"profile": self.profile, "seed": self.seed, "attacks": list(self.attacks),
                "defences": list(self.defences), "trust_pickle": self.trust_pickle,
                "model_uri": self.model_uri, "generated": self.generated}


@dataclass(frozen=True)
class Inventory:
    """A loaded, checked inventory."""

    path: Path
    name: str
    systems: tuple[System, ...]
    digest: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def read_yaml(path: Path) -> Any:
    """The YAML document at ``path`` (duplicate keys refused); SpecError naming the file."""
    from finmlsec.spec.load import load_yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"file not found; check the path (got {str(path)!r})", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the file ({exc}); pass a UTF-8 YAML file",
                        str(path)) from None
    return load_yaml(text, str(path))


def is_inventory(path: Path) -> bool:
    """Whether the YAML file at ``path`` is an inventory (a mapping with ``systems`` and neither
    ``roles`` nor ``usecase``) rather than a spec."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and "systems" in doc and not {"roles", "usecase"} & set(doc)


def _line_of(path: Path, loc: tuple[Any, ...]) -> int | None:
    from finmlsec.spec.load import _line_of as line_of

    try:
        return line_of(path.read_text(encoding="utf-8"), loc)
    except OSError:
        return None


def _fail(path: Path, loc: tuple[Any, ...], message: str) -> SpecError:
    from finmlsec.spec.load import _format_loc

    line = _line_of(path, loc)
    return SpecError(message, f"{path}: {_format_loc(loc)}"
                     + (f" (line {line})" if line is not None else ""))


def _explain(err: Any, loc: tuple[Any, ...]) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = list(Entry.model_fields) if "systems" in loc[:1] else list(
            InventoryFile.model_fields if len(loc) == 1 else Options.model_fields)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}; remove it or fix its spelling"
    if kind == "missing":
        return (f"required key {str(loc[-1])!r} is missing; add it (the list of systems: "
                "spec paths or entries)" if loc == ("systems",) else
                f"required key {str(loc[-1])!r} is missing; add it")
    if kind == "too_short":
        return "lists no system; give at least one spec path or entry"
    if kind in {"literal_error", "enum"}:
        expected = err.get("ctx", {}).get("expected", "")
        return f"{value!r} is not allowed; use one of: {expected.replace(' or ', ', ')}"
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return f"should be a mapping (key: value); got {value!r}"
    if kind in {"list_type", "tuple_type"}:
        return f"should be a list, e.g. [a, b]; got {value!r}"
    msg = str(err["msg"]).replace("Input should be", "should be")
    return f"{msg[:1].lower()}{msg[1:]}; got {value!r}; fix the value"


def _validate(path: Path, doc: Any) -> InventoryFile:
    if not isinstance(doc, dict):
        got = type(doc).__name__ if doc is not None else "an empty document"
        raise SpecError(f"an inventory is a mapping whose key 'systems' lists spec paths or "
                        f"entries; got {got}", str(path))
    try:
        return InventoryFile.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors()
        # a system is a path or an entry: report the entry's error, not "should be a string"
        errors = [e for e in errors if not (len(e["loc"]) >= 3 and e["loc"][2] == "str")] or errors
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(p for p in err["loc"] if p not in ("Entry",))
        raise _fail(path, loc, _explain(err, loc)) from None


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute() and "://" not in value:
        return str((base / value).resolve())
    return value


def _absolute_paths(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """``spec`` with its file paths (model, factory, data, schema, splits) made absolute."""
    out = dict(spec)
    model = out.get("model")
    if isinstance(model, dict):
        model = dict(model)
        if "path" in model:
            model["path"] = _absolute(model["path"], base)
        if isinstance(model.get("factory"), dict) and "path" in model["factory"]:
            model["factory"] = {**model["factory"],
                                "path": _absolute(model["factory"]["path"], base)}
        out["model"] = model
    data = out.get("data")
    if isinstance(data, dict):
        data = dict(data)
        for key in ("path", "schema"):
            if key in data:
                data[key] = _absolute(data[key], base)
        if isinstance(data.get("splits"), dict):
            data["splits"] = {k: _absolute(v, base) for k, v in data["splits"].items()}
        out["data"] = data
    return out


def _default_id(spec_path: Path) -> str:
    return spec_path.parent.name if spec_path.stem in ("spec", "system") else spec_path.stem


def generated_dir(inventory: Path) -> Path:
    """Where the specs of registry entries are written: ``.finmlsec/<inventory>/`` beside it."""
    return inventory.parent / ".finmlsec" / inventory.stem


def load_inventory(path: str | Path, *, profile: str | None = None,
                   seed: int | None = None) -> Inventory:
    """Read and check the inventory at ``path``, write the specs of its registry entries and
    return the systems to scan. ``profile`` / ``seed`` (the command line's) override the
    inventory's ``defaults``; a system's own keys override both."""
    from finmlsec.spec import load_spec, validate_spec
    from finmlsec.spec.load import with_usecase

    inv = Path(path).resolve()
    doc = read_yaml(inv)
    data = _validate(inv, doc)
    base = inv.parent
    systems: list[System] = []
    seen: dict[str, int] = {}
    d = data.defaults
    for i, raw in enumerate(data.systems):
        entry = Entry(spec=raw) if isinstance(raw, str) else raw
        where = ("systems", i)
        overrides = {k: getattr(entry, k) for k in SPEC_KEYS if getattr(entry, k) is not None}
        spec_path: Path | None = None
        if entry.spec is not None:
            spec_path = (base / entry.spec).resolve()
            if not spec_path.is_file():
                raise _fail(inv, (*where, "spec") if not isinstance(raw, str) else where,
                            f"spec file {str(spec_path)!r} does not exist; give a path relative "
                            "to the inventory file")
        elif not overrides:
            raise _fail(inv, where, "an entry needs 'spec' (a spec path) or the spec's keys "
                        "(organisations, roles, model, data, ...)")
        sid = entry.id or (_default_id(spec_path) if spec_path is not None and not overrides
                           else None)
        if sid is None:
            raise _fail(inv, where, "an entry that gives spec keys needs an 'id' (the system's "
                        "name in the portfolio, e.g. id: fraud-v3)")
        if sid in seen:
            raise _fail(inv, where, f"system id {sid!r} is also systems[{seen[sid]}]; give each "
                        "system a unique 'id'")
        seen[sid] = i
        source = f"{inv}: systems[{i}]"
        if overrides:
            merged: dict[str, Any] = {}
            if spec_path is not None:
                base_doc = read_yaml(spec_path)
                if not isinstance(base_doc, dict):
                    raise SpecError("the top level must be a mapping with 'organisations' and "
                                    "'roles'", str(spec_path))
                merged = _absolute_paths(base_doc, spec_path.parent)
            merged.update(_absolute_paths(overrides, base))
            full = with_usecase(merged, source) if "usecase" in merged else merged
            spec = validate_spec(full, source=source, base_dir=base)
            out_dir = generated_dir(inv)
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"{sid}.yaml"
            text = ("# written by `finmlsec scan` from the inventory " + inv.name
                    + f" (systems[{i}]); edit the inventory, not this file\n"
                    + yaml.safe_dump(merged, sort_keys=False, allow_unicode=True))
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
            spec_path = target
        else:
            assert spec_path is not None
            spec = load_spec(spec_path)
        model = spec.model
        systems.append(System(
            id=sid, spec_path=str(spec_path),
            profile=entry.profile or profile or d.profile or "standard",
            seed=entry.seed if entry.seed is not None else (
                seed if seed is not None else (d.seed if d.seed is not None else 0)),
            attacks=tuple(entry.attacks if entry.attacks is not None else d.attacks or ()),
            defences=tuple(entry.defences if entry.defences is not None else d.defences or ()),
            trust_pickle=bool(entry.trust_pickle if entry.trust_pickle is not None
                              else d.trust_pickle),
            model_uri=model.uri if model is not None else None,
            generated=bool(overrides)))
    return Inventory(path=inv, name=data.name or inv.stem, systems=tuple(systems),
                     digest=digest_of(systems))


def digest_of(systems: Any) -> str:
    """A digest of the resolved systems: a stored unfinished portfolio is resumed only when the
    inventory still resolves to the same systems with the same options."""
    return hashlib.sha256(json.dumps(
        [dict(s.__dict__) for s in systems], sort_keys=True, default=str).encode()).hexdigest()

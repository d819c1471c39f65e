"""Loading a system description from YAML, with one clear line per mistake.

Every problem becomes a :class:`~finmlsec.errors.SpecError` whose message names the file, the YAML
path and line, what was wrong, the value received and what to do; the command line turns it into
exit code 2.

Example:
    >>> spec = parse_spec('''
    ... organisations: [{id: bank}, {id: vendor}, {id: customer}]
    ... roles:
    ...   training_data_provider: bank
    ...   system_user: customer
    ...   model_generator: vendor
    ...   model_operator: bank
    ... ''')
    >>> spec.roles.model_generator
    ('vendor',)
    >>> parse_spec('''
    ... organisations: [{id: bank}]
    ... roles: {training_data_provider: bank, system_user: bank, model_generator: bank,
    ...         model_operator: bank, model_operater: bank}
    ... ''', source="spec.yaml")
    Traceback (most recent call last):
    ...
    finmlsec.errors.SpecError: spec.yaml: roles.model_operater (line 4): unknown key 'model_operater' (did you mean 'model_operator'?); remove it or fix its spelling
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from finmlsec.errors import SpecError
from finmlsec.ids import ROLES
from finmlsec.spec.models import SystemSpec

_NOT_FROM_YAML = ("source_dir",)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}; keep one of them", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_spec(path: str | Path) -> SystemSpec:
    """Read, validate and return the system description at ``path``.

    Relative paths inside the spec (model, data, schema) resolve against ``spec.source_dir``, the
    directory of the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"file not found; check the path (got {str(p)!r})", str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the file ({exc}); pass a UTF-8 YAML file", str(p)) from None
    return parse_spec(text, source=str(p), base_dir=p.resolve().parent)


def load_yaml(text: str, source: str = "<spec>") -> Any:
    """The YAML document ``text`` (safe loader, duplicate keys refused); a :class:`SpecError`
    naming ``source`` and the line for malformed YAML. Specs and inventories are read with it."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if str(problem).startswith("duplicate key"):
            raise SpecError(f"{problem} (at {where})", source) from None
        raise SpecError(f"malformed YAML at {where}: {problem}; fix the YAML syntax", source) from None


def parse_spec(text: str, *, source: str = "<spec>", base_dir: Path | None = None) -> SystemSpec:
    """Validate YAML text; ``source`` is the name used in error messages."""
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        got = type(data).__name__ if data is not None else "an empty document"
        raise SpecError(
            f"the top level must be a mapping with 'organisations' and 'roles'; got {got}", source
        )
    if "usecase" in data:
        data = with_usecase(data, source)
    return validate_spec(data, source=source, base_dir=base_dir, text=text)


def usecase_spec(name: str, source: str = "<spec>") -> dict[str, Any]:
    """A shipped use case's organisations, roles and stakes: the package file
    ``finmlsec/usecases/specs/NAME.yaml`` (the one copy; ``examples/`` and ``finmlsec demo build``
    refer to it).

    Example:
        >>> usecase_spec("credit-scoring")["roles"]["model_operator"]
        'bank'
    """
    from importlib import resources

    folder = resources.files("finmlsec").joinpath("usecases", "specs")
    known = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name not in known:
        raise SpecError(f"unknown use case {name!r}; use one of {known}", f"{source}: usecase")
    doc: dict[str, Any] = yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text("utf-8"))
    return doc


def with_usecase(data: dict[str, Any], source: str = "<spec>") -> dict[str, Any]:
    """``usecase: NAME`` takes the shipped use case's keys (:func:`usecase_spec`); a top-level
    key given beside it replaces the use case's whole, except ``stakes``, merged key by key (a
    bank keeps the use case's figures and names its own data's ``personal_fields``).

    Example:
        >>> d = with_usecase({"usecase": "chatbot", "name": "Our bot"})
        >>> d["name"], d["roles"]["model_generator"]
        ('Our bot', 'vendor')
        >>> d = with_usecase({"usecase": "credit-scoring", "stakes": {"personal_fields": []}})
        >>> d["stakes"]["personal_fields"], d["stakes"]["training_data"]
        ([], 'personal')
    """
    name = data["usecase"]
    if not isinstance(name, str):
        raise SpecError(f"a use-case name is a string; got {name!r}", f"{source}: usecase")
    rest = {k: v for k, v in data.items() if k != "usecase"}
    base = usecase_spec(name, source)
    if isinstance(rest.get("stakes"), dict) and isinstance(base.get("stakes"), dict):
        rest["stakes"] = {**base["stakes"], **rest["stakes"]}
    return {**base, **rest}


def validate_spec(
    data: dict[str, Any],
    *,
    source: str = "<spec>",
    base_dir: Path | None = None,
    text: str | None = None,
) -> SystemSpec:
    """Validate an already parsed mapping (e.g. built by ``finmlsec init``)."""
    for key in _NOT_FROM_YAML:
        if key in data:
            raise SpecError(f"unknown key {key!r}; it is set from the file's location, remove it",
                            f"{source}: {key}")
    payload = dict(data)
    payload["source_dir"] = base_dir if base_dir is not None else Path.cwd()
    try:
        return SystemSpec.model_validate(payload)
    except SpecError as exc:
        raise SpecError(_strip(exc), _where(source, _parse_loc(exc.path or ""), text)) from None
    except ValidationError as exc:
        errors = exc.errors()
        # a misspelt key also makes the real one "missing": report the misspelling first
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(err["loc"])
        raise SpecError(_explain(err, loc), _where(source, loc, text)) from None


def _strip(exc: SpecError) -> str:
    msg = str(exc)
    prefix = f"{exc.path}: " if exc.path else ""
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def _parse_loc(path: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for part in path.replace("]", "").split("."):
        name, *indices = part.split("[")
        if name:
            out.append(name)
        out.extend(int(i) for i in indices)
    return tuple(out)


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _where(source: str, loc: tuple[Any, ...], text: str | None) -> str:
    line = _line_of(text, loc) if text is not None else None
    suffix = f" (line {line})" if line is not None else ""
    return f"{source}: {_format_loc(loc)}{suffix}"


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                return line
            line = match[0][0].start_mark.line + 1
            node = match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _explain(err: Any, loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}; remove it or fix its spelling"
    if kind == "missing":
        key = str(loc[-1])
        if len(loc) == 2 and loc[0] == "roles" and key in ROLES:
            return (f"the role {key!r} has no organisation; add '{key}: <organisation id>' "
                    "(every role must be played by a declared organisation)")
        return f"required key {key!r} is missing; add it"
    if len(loc) == 2 and loc[0] == "roles" and loc[1] in ROLES and value is None:
        return "the role has no organisation; give an organisation id or a list of ids"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if len(loc) == 2 and loc[0] == "roles" and loc[1] in ROLES:
        return f"should be an organisation id or a list of ids; got {value!r}"
    if kind in {"tuple_type", "list_type"}:
        return f"should be a list, e.g. [a, b]; got {value!r}"
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        example = "{id: bank}" if loc[:1] == ("organisations",) else "key: value"
        return f"should be a mapping such as {example}; got {value!r}"
    if kind == "too_short":
        return f"needs at least one item; got {value!r}"
    if kind == "string_type":
        return f"should be a text string (quote it in the YAML); got {value!r}"
    if kind in {"literal_error", "enum"}:
        expected = err.get("ctx", {}).get("expected", "")
        return f"{value!r} is not allowed; use one of: {expected.replace(' or ', ', ')}"
    msg = str(err["msg"]).replace("Input should be", "should be")
    return f"{msg[:1].lower()}{msg[1:]}; got {value!r}; fix the value"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Names of the keys allowed at ``loc`` (walks the pydantic models)."""
    cls: Any = SystemSpec
    for part in loc:
        if isinstance(part, int):
            continue
        model = _model_in(cls)
        if model is None or part not in model.model_fields:
            return []
        cls = model.model_fields[part].annotation
    model = _model_in(cls)
    if model is None:
        return []
    return [n for n in model.model_fields if n not in _NOT_FROM_YAML]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None

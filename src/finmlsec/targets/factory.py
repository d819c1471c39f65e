"""The spec's model factory (``model.factory``): how to build an unfitted model trained like the
target, for the attacks that train reference, shadow or poisoned models.

A scikit-learn target clones itself and a torch state_dict target knows its architecture; an ONNX
file or a remote endpoint does neither, so without ``model.factory`` those attacks are skipped.
:func:`load_factory` reads the factory once, when the scenario is loaded, and checks it: the file
exists and loads under the skops rules (``trusted_types``; ``trusted: true`` trusts every type),
or the trusted import path resolves to a function; what it gives is an *unfitted* estimator with
``fit`` and ``predict_proba``. Every problem is a :class:`~finmlsec.errors.SpecError` naming the
YAML path (``model.factory.path`` or ``model.factory.callable``).

Example:
    >>> import tempfile, skops.io as sio
    >>> from pathlib import Path
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.spec import ModelFactoryRef
    >>> d = Path(tempfile.mkdtemp())
    >>> sio.dump(LogisticRegression(C=0.5), d / "untrained.skops")
    >>> make = load_factory(ModelFactoryRef(path="untrained.skops"), base_dir=d)
    >>> make().C, make() is make()
    (0.5, False)
    >>> sio.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), d / "fitted.skops")
    >>> load_factory(ModelFactoryRef(path="fitted.skops"), base_dir=d)
    Traceback (most recent call last):
    ...
    finmlsec.errors.SpecError: model.factory.path: '...fitted.skops' holds a fitted LogisticRegression; ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finmlsec.errors import FinmlsecError, SpecError


def _field(ref: Any, name: str, default: Any = None) -> Any:
    if isinstance(ref, dict):
        return ref.get(name, default)
    return getattr(ref, name, default)


def _check_unfitted(est: Any, what: str, where: str) -> None:
    missing = [m for m in ("fit", "predict_proba") if not callable(getattr(est, m, None))]
    if missing:
        raise SpecError(
            f"{what} gives a {type(est).__name__}, which has no {' or '.join(missing)}(); the "
            "factory must give an unfitted classifier (scikit-learn API) trained like the target",
            where)
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(est)
    except NotFittedError:
        return
    except Exception:  # not a scikit-learn estimator: fitted-ness cannot be told, accept it
        return
    raise SpecError(
        f"{what} holds a fitted {type(est).__name__}; the factory must be unfitted (save "
        "sklearn.base.clone(model), the same estimator before fit)", where)


def _from_skops(ref: Any, base_dir: Path, where: str) -> Callable[[], Any]:
    from sklearn.base import clone

    from finmlsec.targets.sklearn_files import load_skops

    path = Path(_field(ref, "path"))
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise SpecError(f"the factory file {str(path)!r} does not exist; save the unfitted "
                        "estimator with skops.io.dump(estimator, path)", where)
    try:
        template = load_skops(path, trusted_types=tuple(_field(ref, "trusted_types", ()) or ()),
                              trust_all=bool(_field(ref, "trusted", False)))
    except FinmlsecError as exc:
        text = str(exc).replace("\n  model:\n    trusted_types:",
                                "\n  model:\n    factory:\n      trusted_types:")
        raise SpecError(" ".join(text.split()), where) from None
    _check_unfitted(template, repr(str(path)), where)

    def factory() -> Any:
        return clone(template)

    return factory


def _from_callable(ref: Any, where: str) -> Callable[[], Any]:
    spec = str(_field(ref, "callable"))
    if not _field(ref, "trusted", False):
        raise SpecError(f"refusing to import {spec!r}: importing runs its code; add "
                        "'trusted: true' under model.factory if you trust it", where)
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise SpecError(f"cannot import module {module_name!r} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); check the path and "
                        "that the package is installed", where) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"module {module_name!r} has no {attr!r}", where)
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"{spec!r} is a {type(obj).__name__}, not a function", where)
    fn: Callable[[], Any] = obj
    try:
        sample = fn()
    except Exception as exc:
        raise SpecError(f"calling {spec}() failed ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); it must take no "
                        "arguments and return an unfitted estimator", where) from None
    _check_unfitted(sample, f"{spec}()", where)
    return fn


def load_factory(ref: Any, *, base_dir: str | Path = ".", source: str | None = None
                 ) -> Callable[[], Any]:
    """The factory ``ref`` (a :class:`finmlsec.spec.ModelFactoryRef` or a dict of its fields)
    describes, checked (see the module docstring); ``source`` (the spec file) prefixes the YAML
    path in errors."""
    key = "path" if _field(ref, "path") is not None else "callable"
    where = f"model.factory.{key}"
    if source:
        where = f"{source}: {where}"
    if key == "path":
        return _from_skops(ref, Path(base_dir), where)
    return _from_callable(ref, where)

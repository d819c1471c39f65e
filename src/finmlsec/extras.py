"""Optional dependencies. The core install (``pip install finmlsec``) has the threat model, the
defences and the data sets; reports, plots, the result store, the gateway, PyTorch, ONNX, Dask,
PostgreSQL and Redis come with extras. A module that needs one imports it through
:func:`require` where it is used, so that a missing extra is one line naming what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from finmlsec.errors import MissingExtraError

EXTRAS: dict[str, str] = {
    "jinja2": "scan",
    "matplotlib": "scan",
    "sqlalchemy": "scan",
    "alembic": "scan",
    "httpx": "scan",
    "dp_accounting": "scan",
    "arch": "scan",
    "mlxtend": "scan",
    "fastapi": "serve",
    "starlette": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "torch": "torch",
    "opacus": "torch",
    "onnxruntime": "onnx",
    "skl2onnx": "onnx",
    "dask": "dask",
    "distributed": "dask",
    "psycopg": "postgres",
    "redis": "redis",
    "cryptography": "sign",
    "pyarrow": "parquet",
    "mlflow": "mlflow",
}
"""Top-level module -> the extra of ``pyproject.toml`` that installs it."""


def missing(module: str, purpose: str) -> MissingExtraError:
    """The error for ``purpose`` needing ``module``, naming the extra that installs it."""
    top = module.split(".")[0]
    extra = EXTRAS.get(top, "all")
    return MissingExtraError(f"{purpose} needs {top}, which is not installed: "
                             f"pip install 'finmlsec[{extra}]'")


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but one of its own imports is not: not ours to rename
        raise missing(module, purpose) from exc

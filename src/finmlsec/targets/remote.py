"""A model behind a JSON prediction API: the black-box view a real attacker has.

The spec's ``model.remote`` section (validated by :class:`RemoteConfig`) says how to talk to it::

    model:
      format: remote
      classes: [bad, good]
      remote:
        url: http://127.0.0.1:8000/v1/predict
        headers: {X-Client: scanner}
        headers_from_env: {Authorization: FINMLSEC_REMOTE_TOKEN}   # value read from the env
        request: {wrap: instances, record: dict}   # body {"instances": [{col: value}, ...]}
        response: {output: proba, path: predictions}
        batch_size: 100
        timeout: 10
        retries: 3
        backoff: 0.5                               # seconds; doubled after each retry

Request: records are sent in batches of ``batch_size`` as a JSON list under ``wrap`` (``null``:
the body is the list itself), each record as a ``dict`` (column -> value), a ``list`` of values,
or ``auto`` (dicts for tabular data; the string for text; nested lists for images); ``extra``
adds fixed fields to the body. Response: the list at the dotted ``path`` has one item per record;
with ``output: proba`` an item is a list of probabilities in ``classes`` order, a dict
``{class: p}``, or one number (the probability of the last class, for two classes); with
``output: label`` it is a label (the target then gives labels only). ``item_key`` picks a field
when items are objects (``{"label": "good", "score": 0.9}``).

Failures: connection errors, timeouts and HTTP 429/5xx are retried ``retries`` times with
exponential backoff (``Retry-After`` is honoured, up to 30 s); other HTTP errors and malformed
responses raise :class:`~finmlsec.errors.TargetError` at once, with the status and the start of
the body.

Example:
    >>> cfg = RemoteConfig(url="http://127.0.0.1:9/predict", response={"output": "label"})
    >>> t = RemoteTarget(cfg, classes=["bad", "good"])
    >>> sorted(t.capabilities), t.url
    (['label'], 'http://127.0.0.1:9/predict')
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finmlsec.errors import CapabilityError, ConfigError, TargetError
from finmlsec.schema import InputKind


class RequestMapping(BaseModel):
    """How records become a JSON body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wrap: str | None = "instances"
    record: Literal["auto", "dict", "list"] = "auto"
    extra: dict[str, Any] = Field(default_factory=dict)


class ResponseMapping(BaseModel):
    """Where the predictions are in the JSON response, and what they are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: Literal["proba", "label"] = "proba"
    path: str = "predictions"
    item_key: str | None = None


class RemoteConfig(BaseModel):
    """The ``model.remote`` section of a spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://")
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    request: RequestMapping = Field(default_factory=RequestMapping)
    response: ResponseMapping = Field(default_factory=ResponseMapping)
    batch_size: int = Field(default=100, ge=1, le=100_000)
    timeout: float = Field(default=10.0, gt=0, le=600)
    retries: int = Field(default=3, ge=0, le=20)
    backoff: float = Field(default=0.5, ge=0, le=60)
    retry_on: tuple[int, ...] = (429, 500, 502, 503, 504)
    classes: list[Any] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> RemoteConfig:
        """Validate a spec's ``model.remote`` dict; errors name the field."""
        if not raw:
            raise TargetError("format: remote needs a model.remote section with at least a url")
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise TargetError(
                f"model.remote.{where}: {first['msg']} (got {first.get('input')!r})"
            ) from None


def _dig(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            raise KeyError(part)
    return obj


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


class RemoteTarget:
    """A model served over HTTP, queried with JSON (see the module docstring for the mapping)."""

    def __init__(
        self,
        config: RemoteConfig,
        *,
        classes: Sequence[Any] | None = None,
        input_kind: InputKind = "tabular",
    ) -> None:
        names = classes if classes is not None else config.classes
        if not names or len(names) < 2:
            raise ConfigError(
                "A remote target needs its class names: set model.classes (or "
                f"model.remote.classes) to at least 2 labels. Got {names!r} instead."
            )
        self.config = config
        self.classes_ = np.asarray(list(names))
        self.input_kind: InputKind = input_kind
        out = {"label"} | ({"proba"} if config.response.output == "proba" else set())
        self.capabilities = frozenset(out)
        self.requests_sent = 0
        self._client: Any = None

    @property
    def url(self) -> str:
        return self.config.url

    # -- transport ------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        for name, var in self.config.headers_from_env.items():
            value = os.environ.get(var)
            if value is None:
                raise TargetError(
                    f"header {name!r} of the remote target is read from the environment variable "
                    f"{var!r}, which is not set; export it before running"
                )
            headers[name] = value
        return headers

    def _records(self, X: Any) -> list[Any]:
        mode = self.config.request.record
        if isinstance(X, pd.DataFrame):
            if mode == "list":
                return [[_plain(v) for v in row] for row in X.itertuples(index=False)]
            return [{k: _plain(v) for k, v in row.items()} for row in X.to_dict(orient="records")]
        if self.input_kind == "text" and mode != "list":
            return [str(x) for x in X]
        arr = np.asarray(X)
        return arr.tolist()

    def _post(self, body: Any) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.config.timeout, headers=self._headers())
        cfg = self.config
        problem = ""
        delay = 0.0
        for attempt in range(cfg.retries + 1):
            if attempt:
                time.sleep(delay)
            delay = cfg.backoff * (2**attempt)
            try:
                self.requests_sent += 1
                resp = self._client.request(cfg.method, cfg.url, json=body)
            except httpx.TimeoutException:
                problem = f"timed out after {cfg.timeout:g} s"
                continue
            except httpx.HTTPError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
                continue
            if resp.status_code in cfg.retry_on:
                problem = f"HTTP {resp.status_code}: {resp.text[:200]!r}"
                after = resp.headers.get("retry-after", "")
                if after.replace(".", "", 1).isdigit():
                    delay = min(float(after), 30.0)
                continue
            if resp.status_code >= 400:
                raise TargetError(
                    f"the remote model at {cfg.url} answered HTTP {resp.status_code}: "
                    f"{resp.text[:300]!r}; check model.remote.request against the API"
                )
            try:
                return resp.json()
            except ValueError:
                raise TargetError(
                    f"the remote model at {cfg.url} did not answer JSON: {resp.text[:200]!r}"
                ) from None
        raise TargetError(
            f"the remote model at {cfg.url} failed after {cfg.retries + 1} attempt(s): {problem}; "
            "check that it is up, or raise model.remote.timeout / retries"
        )

    def _query(self, X: Any) -> list[Any]:
        cfg = self.config
        records = self._records(X)
        items: list[Any] = []
        for start in range(0, len(records), cfg.batch_size):
            chunk = records[start : start + cfg.batch_size]
            body: Any = chunk
            if cfg.request.wrap:
                body = {**cfg.request.extra, cfg.request.wrap: chunk}
            reply = self._post(body)
            try:
                got = _dig(reply, cfg.response.path)
            except KeyError:
                raise TargetError(
                    f"the response of {cfg.url} has nothing at path {cfg.response.path!r}; "
                    f"it starts {str(reply)[:200]!r}. Set model.remote.response.path"
                ) from None
            if not isinstance(got, list) or len(got) != len(chunk):
                n = len(got) if isinstance(got, list) else type(got).__name__
                raise TargetError(
                    f"the response of {cfg.url} at {cfg.response.path!r} must be a list with one "
                    f"item per record ({len(chunk)}); got {n}"
                )
            if cfg.response.item_key:
                try:
                    got = [g[cfg.response.item_key] for g in got]
                except (KeyError, TypeError):
                    raise TargetError(
                        f"response items of {cfg.url} have no field "
                        f"{cfg.response.item_key!r}: first item {got[0]!r}"
                    ) from None
            items.extend(got)
        return items

    # -- Target protocol ------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        if "proba" not in self.capabilities:
            raise CapabilityError(
                f"the remote model at {self.url} returns labels only "
                "(model.remote.response.output: label); use an attack that needs only labels"
            )
        rows = [self._proba_row(item) for item in self._query(X)]
        return np.array(rows, dtype=float).reshape(len(rows), len(self.classes_))

    def _proba_row(self, item: Any) -> list[float]:
        k = len(self.classes_)
        try:
            if isinstance(item, Mapping):
                return [float(item[str(c)] if str(c) in item else item[c]) for c in self.classes_]
            if isinstance(item, int | float) and k == 2:
                return [1.0 - float(item), float(item)]
            row = [float(v) for v in item]
        except (KeyError, TypeError, ValueError):
            raise TargetError(
                f"cannot read probabilities for classes {self.classes_.tolist()} from the response "
                f"item {item!r}"
            ) from None
        if len(row) != k:
            raise TargetError(
                f"the remote model returned {len(row)} probabilities per record but {k} classes "
                "are named; fix model.classes"
            )
        return row

    def predict(self, X: Any) -> np.ndarray:
        if "proba" in self.capabilities:
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        names = [str(c) for c in self.classes_]
        out = []
        for label in self._query(X):
            try:
                out.append(names.index(str(label)))
            except ValueError:
                raise TargetError(
                    f"the remote model returned the label {label!r}, which is not among the "
                    f"classes {names}; fix model.classes"
                ) from None
        return self.classes_[np.asarray(out, dtype=int)]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"RemoteTarget({self.url!r}, output={self.config.response.output!r})"

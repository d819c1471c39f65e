"""The YAML system description as pydantic models.

A spec says which organisations take part, which of the paper's four roles each plays, how secure
each is, what is at stake, which countermeasures are already deployed, and (for later steps) where
the model and the data are. ``docs/spec.md`` documents every key.

Example:
    >>> spec = SystemSpec.model_validate({
    ...     "organisations": [{"id": "bank"}, {"id": "vendor"}, {"id": "customer"}],
    ...     "roles": {"training_data_provider": "bank", "system_user": "customer",
    ...               "model_generator": "vendor", "model_operator": "bank"},
    ... })
    >>> spec.roles.orgs("model_operator")
    ('bank',)
    >>> spec.effective_security("customer"), spec.effective_security("bank")
    ('moderate', 'high')
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finmlsec.ids import COUNTERMEASURE_IDS, ROLES
from finmlsec.schema import InputKind

Security = Literal["high", "moderate"]
Level = Literal["negligible", "low", "moderate", "high"]
Confidentiality = Literal["public", "internal", "confidential", "personal"]
#: How a scan measures what a countermeasure costs (``stakes.utility_metric``; see
#: ``finmlsec.scan.work.utility``).
UtilityMetric = Literal["accuracy", "balanced_accuracy", "roc_auc", "average_precision", "f1",
                        "precision", "recall"]
LEVELS: tuple[str, ...] = ("negligible", "low", "moderate", "high")

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Organisation(BaseModel):
    """One organisation (bank, vendor, customer, joint venture, ...).

    ``security`` defaults, as in the paper, to ``high`` for an organisation acting as model
    generator or model operator and ``moderate`` otherwise; declare ``moderate`` on a generator or
    operator to model insiders or a weak vendor, ``high`` on a provider or user that is as well
    protected as a generator.
    """

    model_config = _STRICT

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=64)
    name: str | None = None
    security: Security | None = None
    description: str | None = None


class Roles(BaseModel):
    """Which organisation(s) play each role; a role takes an id or a list of ids."""

    model_config = _STRICT

    training_data_provider: tuple[str, ...]
    system_user: tuple[str, ...]
    model_generator: tuple[str, ...]
    model_operator: tuple[str, ...]
    training_data_assembler: str | None = None

    @field_validator(*ROLES, mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and not value:
            raise ValueError("empty list: a role needs at least one organisation id")
        return value

    def orgs(self, role: str) -> tuple[str, ...]:
        """The organisation ids playing ``role``."""
        value: tuple[str, ...] = getattr(self, role)
        return value


class PersonalField(BaseModel):
    """A personal number in the training data; ``round_to`` is the rounding step to apply, or
    ``band`` the width of the bands its values are truncated to from the field's minimum (a
    transaction's weekday: 5, Monday to Friday and the weekend), not both."""

    model_config = _STRICT

    field: str = Field(min_length=1)
    round_to: float | None = Field(default=None, gt=0)
    band: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_rule(self) -> PersonalField:
        if self.round_to is not None and self.band is not None:
            raise ValueError(f"personal field {self.field!r}: give round_to or band, not both")
        return self


class LossEstimates(BaseModel):
    """Optional money estimates of the loss a successful attack would cause."""

    model_config = _STRICT

    training_data_leak: float | None = Field(default=None, ge=0)
    model_theft: float | None = Field(default=None, ge=0)
    wrong_output: float | None = Field(default=None, ge=0)
    outage: float | None = Field(default=None, ge=0)


class Stakes(BaseModel):
    """What is at stake, for the risk decision of the paper's section IV.A."""

    model_config = _STRICT

    training_data: Confidentiality = "confidential"
    personal_fields: tuple[PersonalField, ...] = ()
    model_value: Level = "moderate"
    harm_of_wrong_output: Level = "moderate"
    harm_of_outage: Level = "moderate"
    risk_appetite: Level = "low"
    currency: str = "JPY"
    loss_estimates: LossEstimates = LossEstimates()
    acceptable_loss: float | None = Field(default=None, ge=0)
    #: the utility figure a countermeasure's cost is decided on; None: ``roc_auc`` for a
    #: two-class model that outputs scores, ``accuracy`` otherwise
    utility_metric: UtilityMetric | None = None

    @field_validator("personal_fields", mode="before")
    @classmethod
    def _names_or_objects(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"field": v} if isinstance(v, str) else v for v in value]
        return value


class ModelFactoryRef(BaseModel):
    """How to build an unfitted model trained like the target (``model.factory``), for attacks
    that train reference, shadow or poisoned models when the target itself cannot be cloned (an
    ONNX file, a remote endpoint).

    ``path``: an unfitted scikit-learn estimator or pipeline saved with ``skops.io.dump``, loaded
    with the same rules as a skops model (``trusted_types``; ``trusted: true`` trusts every type);
    ``callable``: ``"package.module:function"`` returning an unfitted estimator, imported and
    called only with ``trusted: true`` (importing runs the module's code).
    """

    model_config = _STRICT

    path: str | None = None
    callable: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    trusted: bool = False
    trusted_types: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> ModelFactoryRef:
        if (self.path is None) == (self.callable is None):
            raise ValueError("give exactly one of 'path' (an unfitted estimator saved with skops) "
                             "or 'callable' ('package.module:function')")
        if self.callable is not None and not self.trusted:
            raise ValueError(f"refusing to import {self.callable!r}: importing runs its code; "
                             "add 'trusted: true' under model.factory if you trust it")
        return self


class PrivacyClaim(BaseModel):
    """The differential-privacy guarantee claimed for the model's training
    (``model.privacy_claim``): (``epsilon``, ``delta``)-DP with respect to one training record. A
    scan compares it with the empirical lower bound its membership attacks establish."""

    model_config = _STRICT

    epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float = Field(default=0.0, ge=0, lt=1)
    #: how the guarantee is obtained (free text, e.g. "DP-SGD, RDP accountant")
    mechanism: str | None = None


class ModelRef(BaseModel):
    """Where the model is and how to load it (used by ``targets``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    #: how the model is saved; ``mlflow`` (implied by ``uri``): an MLflow model URI
    format: Literal["skops", "onnx", "torch", "pickle", "remote", "mlflow"]
    path: str | None = None
    #: an MLflow model URI (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/RUN/PATH``),
    #: loaded through MLflow's loader (extra ``mlflow``); ``tracking_uri``: the MLflow tracking
    #: and registry store (else ``MLFLOW_TRACKING_URI``)
    uri: str | None = None
    tracking_uri: str | None = None
    trusted: bool = False
    trusted_types: list[str] = Field(default_factory=list)
    input_kind: InputKind = "tabular"
    classes: list[str | int] | None = None
    remote: dict[str, Any] | None = None
    torch: dict[str, Any] | None = None
    factory: ModelFactoryRef | None = None
    privacy_claim: PrivacyClaim | None = None
    #: the bank's cut-off: a two-class model decides the schema's ``positive_class`` (the
    #: unfavourable outcome: ``bad``, ``reject``) where that class's probability is at least
    #: this, the other class otherwise (``finmlsec.targets.cutoff``); None: the model's own
    #: ``predict`` (0.5 for a probabilistic classifier)
    decision_threshold: float | None = None

    @field_validator("decision_threshold", mode="before")
    @classmethod
    def _probability(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ValueError(
                f"should be a probability strictly between 0 and 1 (the score of the schema's "
                f"positive_class at which the bank decides against the applicant, e.g. 0.1); "
                f"got {value!r}")
        return float(value)

    @model_validator(mode="before")
    @classmethod
    def _mlflow_format(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("uri") is not None and "format" not in data:
            return {**data, "format": "mlflow"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModelRef:
        if self.format == "mlflow" or self.uri is not None:
            if self.format != "mlflow":
                raise ValueError(f"'uri' is an MLflow model URI: it takes no format "
                                 f"{self.format!r}; remove 'format' (or say format: mlflow)")
            if self.uri is None or not self.uri.startswith(("models:/", "runs:/")):
                raise ValueError("an MLflow model needs 'uri: models:/NAME/VERSION' (or "
                                 f"models:/NAME@ALIAS, runs:/RUN_ID/PATH); got {self.uri!r}")
            if self.path is not None:
                raise ValueError("an MLflow model ('uri') takes no 'path'; give one of them")
        elif self.tracking_uri is not None:
            raise ValueError("'tracking_uri' is only for an MLflow model ('uri')")
        elif self.format == "remote":
            if self.remote is None:
                raise ValueError("format 'remote' needs a 'remote' section (e.g. url: ...)")
            if self.path is not None:
                raise ValueError("format 'remote' takes no 'path'; put the address under 'remote'")
        elif self.path is None:
            raise ValueError(f"format {self.format!r} needs a 'path' (relative to the spec file)")
        if self.remote is not None and self.format != "remote":
            raise ValueError("'remote' is only for format 'remote'")
        if self.torch is not None and self.format != "torch":
            raise ValueError("'torch' options are only for format 'torch'")
        return self


class DataSplits(BaseModel):
    """Files written by ``demo build`` (paths relative to the spec file)."""

    model_config = _STRICT

    train: str | None = None
    test: str | None = None
    population: str | None = None


with warnings.catch_warnings():
    # the YAML key is ``schema`` (shared contract); it shadows a deprecated BaseModel classmethod
    warnings.filterwarnings("ignore", message=".*shadows an attribute.*")

    class DataRef(BaseModel):
        """The data: a registered dataset name, or a CSV or Parquet file (or a directory of
        Parquet files) with a label column; ``sample``: read the file in chunks and keep a
        seeded, stratified sample of at most this many rows (see
        :mod:`finmlsec.datasets.chunked`; Parquet data is always read so, 50,000 rows by
        default)."""

        model_config = _STRICT

        dataset: str | None = None
        path: str | None = None
        label: str | None = None
        schema: str | None = None  # type: ignore[assignment]
        splits: DataSplits | None = None
        seed: int = 0
        sample: int | None = Field(default=None, ge=3)

        @model_validator(mode="after")
        def _consistent(self) -> DataRef:
            if (self.dataset is None) == (self.path is None):
                raise ValueError("give exactly one of 'dataset' (a registered name) or 'path' "
                                 "(a CSV or Parquet file, or a directory of Parquet files)")
            if self.sample is not None and (self.path is None or self.splits is not None):
                raise ValueError("'sample' applies to 'path' without 'splits' (the data is "
                                 "split and sampled as it is read); remove one of them")
            if self.path is not None and self.label is None:
                raise ValueError("'path' needs 'label' (the label column of the CSV)")
            return self


class SystemSpec(BaseModel):
    """A whole system description; build it with :func:`finmlsec.spec.load_spec`."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    name: str | None = None
    description: str | None = None
    organisations: tuple[Organisation, ...] = Field(min_length=1)
    roles: Roles
    stakes: Stakes = Stakes()
    deployed_countermeasures: list[str] = Field(default_factory=list)
    model: ModelRef | None = None
    data: DataRef | None = None
    source_dir: Path = Field(default=Path("."), exclude=True)

    def organisation(self, org_id: str) -> Organisation:
        for org in self.organisations:
            if org.id == org_id:
                return org
        raise KeyError(org_id)

    def roles_of(self, org_id: str) -> tuple[str, ...]:
        """The roles ``org_id`` plays, in the paper's order."""
        return tuple(r for r in ROLES if org_id in self.roles.orgs(r))

    def effective_security(self, org_id: str) -> str:
        """Declared security, else the paper's default (high for generator or operator)."""
        declared = self.organisation(org_id).security
        return declared if declared is not None else self.default_security(org_id)

    def default_security(self, org_id: str) -> str:
        secure_roles = {"model_generator", "model_operator"}
        return "high" if secure_roles & set(self.roles_of(org_id)) else "moderate"

    def assembler(self) -> str | None:
        """The training-data provider that assembles the training data (None if ambiguous)."""
        if self.roles.training_data_assembler is not None:
            return self.roles.training_data_assembler
        tdps = self.roles.orgs("training_data_provider")
        return tdps[0] if len(set(tdps)) == 1 else None

    @model_validator(mode="after")
    def _references(self) -> SystemSpec:
        check_references(self)
        return self


def check_references(spec: SystemSpec) -> None:
    """Cross-checks that pydantic field types cannot express; raises SpecError naming the path."""
    from finmlsec.errors import SpecError

    ids = [org.id for org in spec.organisations]
    seen: dict[str, int] = {}
    for i, org_id in enumerate(ids):
        if org_id in seen:
            raise SpecError(
                f"duplicate organisation id {org_id!r} (also at organisations[{seen[org_id]}]); "
                "give each organisation a unique id",
                f"organisations[{i}].id",
            )
        seen[org_id] = i
    known = ", ".join(sorted(ids))
    for role in ROLES:
        members = spec.roles.orgs(role)
        for j, org_id in enumerate(members):
            where = f"roles.{role}" if len(members) == 1 else f"roles.{role}[{j}]"
            if org_id not in seen:
                raise SpecError(
                    f"organisation {org_id!r} is not declared{_did_you_mean(org_id, ids)}; "
                    f"declare it under 'organisations' or use one of: {known}",
                    where,
                )
            if members.index(org_id) != j:
                raise SpecError(f"organisation {org_id!r} is listed twice; list it once", where)
    assembler = spec.roles.training_data_assembler
    if assembler is not None and assembler not in spec.roles.training_data_provider:
        tdps = ", ".join(spec.roles.training_data_provider)
        raise SpecError(
            f"{assembler!r} is not a training-data provider{_did_you_mean(assembler, ids)}; "
            f"name one of: {tdps}",
            "roles.training_data_assembler",
        )
    fields = [p.field for p in spec.stakes.personal_fields]
    for k, name in enumerate(fields):
        if fields.index(name) != k:
            raise SpecError(f"personal field {name!r} is listed twice; list it once",
                            f"stakes.personal_fields[{k}]")
    for k, cm in enumerate(spec.deployed_countermeasures):
        if cm not in COUNTERMEASURE_IDS:
            raise SpecError(
                f"unknown countermeasure {cm!r}{_did_you_mean(cm, COUNTERMEASURE_IDS)}; "
                f"known: {', '.join(COUNTERMEASURE_IDS)}",
                f"deployed_countermeasures[{k}]",
            )
        if spec.deployed_countermeasures.index(cm) != k:
            raise SpecError(f"countermeasure {cm!r} is listed twice; list it once",
                            f"deployed_countermeasures[{k}]")


def _did_you_mean(word: str, candidates: Any) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""

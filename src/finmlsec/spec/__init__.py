"""The YAML system description: pydantic models and loading with clear errors.

``load_spec(path)`` returns a frozen :class:`SystemSpec`; every mistake is a
:class:`~finmlsec.errors.SpecError` naming the file and YAML path. See ``docs/spec.md``.
"""

from finmlsec.spec.load import load_spec, parse_spec, validate_spec
from finmlsec.spec.models import (
    LEVELS,
    DataRef,
    DataSplits,
    LossEstimates,
    ModelFactoryRef,
    ModelRef,
    Organisation,
    PersonalField,
    Roles,
    Stakes,
    SystemSpec,
)

__all__ = [
    "LEVELS",
    "DataRef",
    "DataSplits",
    "LossEstimates",
    "ModelFactoryRef",
    "ModelRef",
    "Organisation",
    "PersonalField",
    "Roles",
    "Stakes",
    "SystemSpec",
    "load_spec",
    "parse_spec",
    "validate_spec",
]

"""The use cases' data, each with a feature schema."""

from finmlsec.datasets.base import DATASETS, Dataset, load
from finmlsec.datasets.schema import Feature, FeatureSchema, FeatureType

__all__ = ["DATASETS", "Dataset", "Feature", "FeatureSchema", "FeatureType", "load"]

"""The use cases' data, each with a feature schema.

Importing this package registers the loaders in :data:`DATASETS`; loading happens only in
:func:`load`, from files shipped with the package (nothing is downloaded).
"""

from finmlsec.datasets import bank_intents as _bank_intents  # noqa: F401  (registers)
from finmlsec.datasets import card_fraud as _card_fraud  # noqa: F401
from finmlsec.datasets import german_credit as _german_credit  # noqa: F401
from finmlsec.datasets import market_anomalies as _market_anomalies  # noqa: F401
from finmlsec.datasets import ocr_digits as _ocr_digits  # noqa: F401
from finmlsec.datasets.base import DATASETS, Dataset, load

__all__ = ["DATASETS", "Dataset", "load"]

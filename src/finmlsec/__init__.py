"""finmlsec: the security analysis of Inoue & Une (Bank of Japan) made executable.

analyze (threat model) -> scan (real attacks and countermeasures, measured) -> defend (components)
-> serve (the model operator as a guarded service).
"""

from __future__ import annotations

from finmlsec.errors import FinmlsecError

__version__ = "0.1.0"

__all__ = ["FinmlsecError", "__version__"]

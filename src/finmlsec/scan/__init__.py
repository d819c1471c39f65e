"""``finmlsec scan``: from the threat model to measured risk.

plan (:mod:`~finmlsec.scan.plan`) -> units run by an executor (:mod:`~finmlsec.scan.executors`,
:mod:`~finmlsec.scan.work`) -> outcomes in the store -> a decision per threat
(:mod:`~finmlsec.scan.decide`).
"""

from finmlsec.scan.decide import at_least, risk_level, summarize
from finmlsec.scan.executors import make_executor
from finmlsec.scan.plan import PlannedThreat, ScanPlan, Unit, make_plan, unit_seed
from finmlsec.scan.profiles import PROFILES, Profile, get_profile
from finmlsec.scan.runner import finish, run_scan, start_scan
from finmlsec.scan.work import ScanContext, execute_unit

__all__ = [
    "PROFILES",
    "PlannedThreat",
    "Profile",
    "ScanContext",
    "ScanPlan",
    "Unit",
    "at_least",
    "execute_unit",
    "finish",
    "get_profile",
    "make_executor",
    "make_plan",
    "risk_level",
    "run_scan",
    "start_scan",
    "summarize",
    "unit_seed",
]

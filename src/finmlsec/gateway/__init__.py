"""The model operator as a guarded HTTP service (``finmlsec serve``); see ``docs/serve.md``.

``create_app(settings, target=..., schema=...)`` builds a FastAPI app; ``Settings`` holds storage
and tuning, ``Policy`` the guards.
"""

from finmlsec.gateway.app import create_app
from finmlsec.gateway.policy import Policy, load_policy
from finmlsec.gateway.settings import Settings

__all__ = ["Policy", "Settings", "create_app", "load_policy"]

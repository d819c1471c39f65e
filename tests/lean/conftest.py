"""With FINMLSEC_TEST_HIDE_EXTRAS=1 the optional dependencies are hidden before any test here
imports finmlsec (tests/lean/_hide.py)."""

import os

from _hide import ENV, hide_extras

if os.environ.get(ENV) == "1":
    hide_extras()

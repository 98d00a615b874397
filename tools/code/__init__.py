"""Running untrusted Python: the code agent's sandbox.

`Sandbox(limits).run_python` is the tool; `detect_tier()` says which isolation this machine offers.
"""

from tools.code.models import PythonRun, SandboxLimits, Tier
from tools.code.sandbox import ENV_TIER, Sandbox
from tools.code.tiers import SANDBOX_UID, detect_tier

__all__ = ["ENV_TIER", "SANDBOX_UID", "PythonRun", "Sandbox", "SandboxLimits", "Tier", "detect_tier"]

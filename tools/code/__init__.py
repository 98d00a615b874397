"""Running untrusted Python: the code agent's sandbox.

`Sandbox(limits).run_python` is the tool; `program_value` turns its run into a code step's value
(or ProgramFailedError); `detect_tier()` says which isolation this machine offers.
"""

from tools.code.models import ProgramFailedError, PythonRun, SandboxLimits, Tier, program_value
from tools.code.sandbox import Sandbox
from tools.code.tiers import ENV_TIER, SANDBOX_UID, SandboxUnavailableError, detect_tier

__all__ = [
    "ENV_TIER",
    "SANDBOX_UID",
    "ProgramFailedError",
    "PythonRun",
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailableError",
    "Tier",
    "detect_tier",
    "program_value",
]

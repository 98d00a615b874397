"""Import Flyte without letting it write to stdout (the MCP protocol's wire in stdio mode).

After `flyte.init()` Flyte's Rich log handler writes to stdout, and `import flyte` installs an
excepthook that prints to stdout. Both are turned off here, before and right after the import.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


def import_flyte() -> ModuleType:
    os.environ.setdefault("DISABLE_RICH_LOGGING", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    hook = sys.excepthook
    import flyte

    sys.excepthook = hook if hook is not sys.__excepthook__ else sys.__excepthook__
    return flyte

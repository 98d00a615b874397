import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def reachable_tmp_dir() -> Iterator[Path]:
    """An empty dir that the sandbox uid can reach (pytest's tmp_path sits in a 0700 dir: the
    unshare tier's uid could not open its runner there)."""
    path = Path(tempfile.mkdtemp(prefix="planner-test-runs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)

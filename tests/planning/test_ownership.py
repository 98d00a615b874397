"""Run ownership: `host:pid:start` identities and whether their process still runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from planning.ownership import is_alive, process_identity, this_process


def kernel_start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat, read after the command name's last ')'."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


@needs_proc
def test_this_process_is_named_by_host_pid_and_kernel_start_time() -> None:
    assert this_process() == f"{socket.gethostname()}:{os.getpid()}:{kernel_start_ticks(os.getpid())}"
    assert process_identity(os.getpid()) == this_process()
    assert is_alive(this_process()) is True


@needs_proc
def test_a_process_that_has_exited_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        owner = process_identity(child.pid)
        assert is_alive(owner) is True
    finally:
        child.communicate(b"", timeout=30)

    assert is_alive(owner) is False


@needs_proc
def test_a_recycled_pid_is_not_mistaken_for_the_original_process() -> None:
    host, pid, start = this_process().rsplit(":", 2)

    assert is_alive(f"{host}:{pid}:{int(start) + 1}") is False


@needs_proc
def test_the_start_time_is_read_right_when_the_command_name_has_spaces_and_parentheses(tmp_path: Path) -> None:
    odd = tmp_path / "a) (b c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen(
        [str(odd), "-c", "print('ready', flush=True); input()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"  # exec is done: the kernel shows the new name
        if Path(f"/proc/{child.pid}/comm").read_text().strip() != "a) (b c":
            pytest.skip("this kernel did not name the process after the link it ran")
        owner = process_identity(child.pid)
        assert owner == f"{socket.gethostname()}:{child.pid}:{kernel_start_ticks(child.pid)}"
        assert is_alive(owner) is True
    finally:
        child.communicate(b"\n", timeout=30)


def test_an_owner_on_another_host_counts_as_alive() -> None:
    assert is_alive("some-other-host.example:1:12345") is True


@pytest.mark.parametrize("owner", ["", "garbage", "host:pid:start", "host:12:", "12:34"])
def test_an_owner_this_code_did_not_write_is_not_alive(owner: str) -> None:
    assert is_alive(owner) is False


def test_a_live_pid_without_a_start_time_counts_as_alive() -> None:
    # Where /proc is missing the identity carries start 0; the pid alone decides.
    assert is_alive(f"{socket.gethostname()}:{os.getpid()}:0") is True

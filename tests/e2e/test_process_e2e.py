"""How the daemon's process ends when it must (docs/operations.md, Signals)."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import ItsmdFactory

pytestmark = pytest.mark.e2e


def test_a_fatal_signal_is_told_in_the_log_before_the_process_dies(
    itsmd_server: ItsmdFactory,
) -> None:
    """SIGBUS (what an -shm file that can no longer be written raises) ends the
    process, but not silently: the log names it and shows where each thread was."""
    daemon = itsmd_server.start()
    returncode = daemon.stop(signal.SIGBUS)
    log = daemon.log
    assert "Fatal Python error: Bus error" in log, log
    assert "most recent call first" in log, log
    if returncode == -signal.SIGSEGV:
        # Walking the stack of a thread that is running at that instant can fault
        # (faulthandler's dump is best effort): the Bus error is still named first.
        crash = log.index("Fatal Python error: Segmentation fault")
        assert log.index("Fatal Python error: Bus error") < crash, log
    else:
        assert returncode == -signal.SIGBUS, log

"""The fork server the ingest process is forked from (runtime/ingestproc.py): a clean
process that imported the ingest process's modules once, rather than the daemon,
which runs threads and an event loop. This module imports nothing of them, so that
`itsmd run` can start the server before it imports its own."""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from multiprocessing.context import ForkServerContext

_PRELOAD = ["itsmd.runtime.ingestproc"]


def context() -> ForkServerContext:
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(_PRELOAD)
    return mp


def start() -> None:
    """Start the server now: it imports the ingest process's modules (about 0.4 s)
    while the daemon imports and loads its own, instead of after."""
    context()
    forkserver.ensure_running()

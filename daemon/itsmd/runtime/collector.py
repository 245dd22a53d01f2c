"""Keeping the cycle collector off the ingest path, in the daemon and in the ingest
process alike."""

from __future__ import annotations

import gc


def tune_gc(collect: bool = True) -> None:
    """Once start-up is done (`collect`: after a pass that frees start-up's garbage;
    the ingest process, fresh from the fork server, has next to none, and the pass
    over the modules it holds took about 50 ms of its start).

    Ingestion allocates many short-lived objects; with the default thresholds the
    collector ran often enough, over everything start-up built (rules, compiled
    templates), to be the tail of a 20-alert request: bench batch-20 p99 went from
    about 88 ms to 40 ms with this (bench/RESULTS.md); the ingest process's CPU
    fell by about 6% with it. Reference counting still frees almost everything at
    once; only cycles wait longer.
    """
    if collect:
        gc.collect()
    gc.freeze()  # start-up's objects are never collected: skip them in every pass
    gc.set_threshold(20_000, 50, 100)

"""Keeping the cycle collector off the ingest path, in the daemon and in the ingest
process alike."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Once start-up is done.

    Ingestion allocates many short-lived objects; with the default thresholds the
    collector ran often enough, over everything start-up built (rules, compiled
    templates), to be the tail of a 20-alert request: bench batch-20 p99 went from
    about 88 ms to 40 ms with this (bench/RESULTS.md); in the ingest process it took
    about 3% of the CPU. Reference counting still frees almost everything at once;
    only cycles wait longer.
    """
    gc.collect()
    gc.freeze()  # start-up's objects are never collected: skip them in every pass
    gc.set_threshold(20_000, 50, 100)

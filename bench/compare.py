"""Two versions under the same load, in alternated pairs: the way to tell whether a
change made itsmd faster on a machine whose speed drifts (bench/RESULTS.md, "How to
read these figures").

    python bench/compare.py HEAD~1       # batch-20, 3 pairs, the floor after each
    python bench/compare.py c6f8916 --scenario single-1 --scenario batch-20 --pairs 5

The other version runs from a temporary git worktree with its own code (bench/run.py
puts its checkout's `daemon/` first on the daemon's path; its compiled modules are
built there) and this checkout's virtualenv; each pair runs the other version first,
then this one, then the floor (`floor-single-1`, `floor-batch-20`), so that a drift
of the machine shows in the floor beside the pair.
Nothing is appended to `bench/results/results.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The floor (bench/floor.py) under the same load as the scenario, where there is one.
FLOORS = {"single-1": "floor-single-1", "batch-20": "floor-batch-20"}


def run(checkout: Path, scenarios: list[str], runs: int) -> dict[str, dict[str, Any]]:
    """The medians of `bench/run.py` in `checkout`, by scenario. The results file it
    appends to is put back as it was: a worktree's is thrown away with it."""
    results = checkout / "bench" / "results" / "results.jsonl"
    kept = results.read_bytes() if results.exists() else None
    command = [sys.executable, str(checkout / "bench" / "run.py"), "--runs", str(runs)]
    for scenario in scenarios:
        command += ["--scenario", scenario]
    try:
        done = subprocess.run(command, cwd=checkout, capture_output=True, text=True, check=False)
    finally:
        if kept is not None:
            results.write_bytes(kept)
    if done.returncode != 0:
        sys.exit(f"bench/run.py failed in {checkout}:\n{done.stderr[-2000:]}")
    medians = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    found = {m["scenario"]: m for m in medians}
    if missing := [s for s in scenarios if s not in found]:
        sys.exit(f"bench/run.py in {checkout} has no scenario {', '.join(missing)}")
    return found


def _row(
    pair: int,
    name: str,
    b: dict[str, Any],
    a: dict[str, Any],
    floor: dict[str, dict[str, Any]],
    with_floor: bool,
) -> str:
    change = a["alerts_per_s"] / b["alerts_per_s"] - 1
    cells = [str(pair), name, f"{b['alerts_per_s']:,.0f}", f"{a['alerts_per_s']:,.0f}"]
    cells += [f"{change:+.0%}", f"{b['cpu_s']:.2f}", f"{a['cpu_s']:.2f}"]
    cells += [f"{b['p99_ms']:.1f}", f"{a['p99_ms']:.1f}"]
    f = floor.get(FLOORS.get(name, ""))
    if f is not None:
        cells += [f"{f['alerts_per_s']:,.0f}", f"{a['alerts_per_s'] / f['alerts_per_s']:.2f}"]
    elif with_floor:
        cells += ["", ""]
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the other version: a commit, branch or tag")
    parser.add_argument("--scenario", action="append", help="default batch-20 (repeatable)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor after a pair")
    args = parser.parse_args()
    scenarios = args.scenario or ["batch-20"]
    base = subprocess.run(
        ["git", "rev-parse", "--short", f"{args.base}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if base.returncode != 0:
        sys.exit(f"not a commit: {args.base}")
    commit = base.stdout.strip()
    columns = ["pair", "scenario", "before alerts/s", "after alerts/s", "change"]
    columns += ["before CPU s", "after CPU s", "before p99 ms", "after p99 ms"]
    floors = [] if args.no_floor else [FLOORS[n] for n in scenarios if n in FLOORS]
    if floors:
        columns += ["floor alerts/s", "ratio after"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "--:|" * len(columns)]
    with tempfile.TemporaryDirectory(prefix="itsmd-compare-") as tmp:
        worktree = Path(tmp) / commit
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(worktree), commit],
            cwd=ROOT,
            check=True,
        )
        if (worktree / "setup.py").exists():  # its own compiled modules, beside its code
            subprocess.run(
                [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
                cwd=worktree,
                check=True,
            )
        try:
            for pair in range(1, args.pairs + 1):
                before = run(worktree, scenarios, args.runs)
                after = run(ROOT, scenarios, args.runs)
                floor = run(ROOT, floors, args.runs) if floors else {}
                for name in scenarios:
                    row = _row(pair, name, before[name], after[name], floor, bool(floors))
                    print(row, file=sys.stderr, flush=True)  # progress, as each pair ends
                    lines.append(row)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False
            )
    print(f"{commit} (before) against this checkout (after), medians of {args.runs} runs:")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

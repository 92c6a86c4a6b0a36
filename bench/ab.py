"""A benchmark on two versions of the server, alternated in one session.

    .venv/bin/python bench/ab.py BASE_REV [--rounds 4] [--clients 256] [--duration 15]
    .venv/bin/python bench/ab.py BASE_REV --bench roomtick [--rooms 1] [--gap-ms 0] [--rounds 8]

Run-to-run noise on this machine kind is about ±10 % (docs/performance.md),
more than most single changes buy, so a change is judged by runs of the old
and the new code taken in turns, not by figures from different hours or
days; each side goes first in half of the pairs. BASE_REV (a commit, branch
or tag) is checked out into a temporary git worktree; both trees get a fresh
build of the Cython core, and a pair whose sides ran different cores stops
the comparison. Prints each run's JSON line (with `"side": "base"` or
`"work"`), then a summary line: the median CPU µs per player-tick of each
side (with `--bench roomtick`: µs per in-process room-tick,
bench/roomtick.py), their ratio (work / base; below 1 is faster), and in
how many pairs the work side cost less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURE = {"arena": "cpu_us_per_client_tick", "roomtick": "us_per_room_tick"}  # what is compared


def run(tree: Path, args: argparse.Namespace) -> dict:
    """One run of the benchmark on the code in `tree` (this venv's packages):
    the tree's bench/arena.py, or this tree's bench/roomtick.py."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if args.bench == "roomtick":
        command = [sys.executable, str(ROOT / "bench" / "roomtick.py"), "--rooms", str(args.rooms)]
        command += ["--gap-ms", str(args.gap_ms)]
    else:
        command = [sys.executable, str(tree / "bench" / "arena.py"), "--clients", str(args.clients)]
        command += ["--duration", str(args.duration)]
    out = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=True)
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", help="the git revision to compare the working tree with")
    parser.add_argument(
        "--rounds", type=int, default=4, help="pairs of runs (each side first in half of them)"
    )
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--bench",
        choices=("arena", "roomtick"),
        default="arena",
        help="roomtick: arena room-ticks in process (bench/roomtick.py); a few percent of "
        "noise over 6 or more rounds",
    )
    parser.add_argument("--rooms", type=int, default=1, help="with --bench roomtick")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="with --bench roomtick")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gs-ab-") as scratch:
        base = Path(scratch) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.base], check=True)  # fmt: skip
        try:
            build = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
            for tree in (base, ROOT):  # the working tree's build may be stale
                subprocess.run(build, cwd=tree, check=True, capture_output=True)
            cost: dict[str, list[float]] = {"base": [], "work": []}
            lower = 0  # pairs in which the work side cost less
            for pair in range(args.rounds):
                sides = [("base", base), ("work", ROOT)]
                if pair % 2:  # each side goes first in half of the pairs
                    sides.reverse()
                results = {side: {"side": side, **run(tree, args)} for side, tree in sides}
                for result in results.values():
                    print(json.dumps(result), flush=True)
                if results["base"]["core"] != results["work"]["core"]:
                    sys.exit(f"the sides ran different cores: {results['base']['core']} "
                             f"and {results['work']['core']} (a failed build?)")  # fmt: skip
                if not all(r.get("valid", True) for r in results.values()):
                    continue
                figure = {side: r[FIGURE[args.bench]] for side, r in results.items()}
                for side, value in figure.items():
                    cost[side].append(value)
                lower += figure["work"] < figure["base"]
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)  # fmt: skip
    medians = {side: round(statistics.median(v), 2) if v else None for side, v in cost.items()}
    ratio = medians["work"] / medians["base"] if medians["base"] and medians["work"] else None
    summary = {"bench": f"{args.bench}-ab", "base": args.base}
    if args.bench == "arena":
        summary["clients"] = args.clients
    else:
        summary |= {"rooms": args.rooms, "gap_ms": args.gap_ms}
    summary |= {f"{side}_{FIGURE[args.bench]}": m for side, m in medians.items()}
    summary |= {"work_over_base": ratio and round(ratio, 3), "pairs": len(cost["work"])}
    print(json.dumps({**summary, "work_lower_in": lower}))


if __name__ == "__main__":
    main()

"""A benchmark on two versions of the server, alternated in one session.

    .venv/bin/python bench/ab.py BASE_REV [--rounds 4] [--clients 256] [--duration 15]
    .venv/bin/python bench/ab.py BASE_REV --bench roomtick [--rooms 1] [--rounds 8]

Run-to-run noise on this machine kind is about ±10 % (docs/performance.md),
more than most single changes buy, so a change is judged by runs of the old
and the new code taken in turns, minutes apart, not by figures from different
days. BASE_REV (a commit, branch or tag) is checked out into a temporary git
worktree with its own build of the Cython core; the working tree is the other
side. Prints each run's JSON line (with `"side": "base"` or `"work"`), then
a summary line: the median CPU µs per player-tick of each side (with
`--bench roomtick`: µs per in-process room-tick, bench/roomtick.py) and
their ratio (work / base; below 1 is faster).
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
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs, base first")
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--bench",
        choices=("arena", "roomtick"),
        default="arena",
        help="roomtick: one arena room-tick in process (bench/roomtick.py), a few percent of noise",
    )
    parser.add_argument("--rooms", type=int, default=1, help="with --bench roomtick")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gs-ab-") as scratch:
        base = Path(scratch) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.base], check=True)  # fmt: skip
        try:
            build = [sys.executable, "setup.py", "-q", "build_ext", "--inplace"]
            subprocess.run(build, cwd=base, check=True, capture_output=True)
            cost: dict[str, list[float]] = {"base": [], "work": []}
            for _ in range(args.rounds):
                for side, tree in (("base", base), ("work", ROOT)):
                    result = {"side": side, **run(tree, args)}
                    print(json.dumps(result), flush=True)
                    if result.get("valid", True):
                        cost[side].append(result[FIGURE[args.bench]])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)  # fmt: skip
    medians = {side: round(statistics.median(v), 2) if v else None for side, v in cost.items()}
    ratio = medians["work"] / medians["base"] if medians["base"] and medians["work"] else None
    summary = {"bench": f"{args.bench}-ab", "base": args.base}
    if args.bench == "arena":
        summary["clients"] = args.clients
    summary |= {f"{side}_{FIGURE[args.bench]}": m for side, m in medians.items()}
    print(json.dumps({**summary, "work_over_base": ratio and round(ratio, 3)}))


if __name__ == "__main__":
    main()

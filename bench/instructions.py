"""Instructions per arena room-tick, counted by valgrind: the same figure
every run, whatever else the machine is doing.

    .venv/bin/python bench/instructions.py [--rooms 8]

Runs `bench/roomtick.py` under `valgrind --tool=callgrind` twice, for a
short and a long run, and divides the difference of their instruction
counts by the difference of their room-ticks, so the start-up drops out.
Time on this machine kind moves by 10-30 % from hour to hour; instruction
counts do not, so a change to the service's own work shows here even when
it is a percent. Instructions are not time (a cache miss costs no
instructions): confirm with `bench/ab.py --bench roomtick`. Needs valgrind
(Debian's package); takes about 30 s. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOMTICK = Path(__file__).resolve().parent / "roomtick.py"
SHORT, LONG = 800, 4000  # room-ticks


def instructions(room_ticks: int, rooms: int, scratch: str) -> int:
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out.%p"]
    command += [sys.executable, str(ROOMTICK), "--rooms", str(rooms), "--number", str(room_ticks)]
    command += ["--repeat", "1", "--rounds", "1"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts every run
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gs-instructions-") as scratch:
        short, long = (instructions(n, args.rooms, scratch) for n in (SHORT, LONG))
    per_tick = (long - short) / (LONG - SHORT)
    print(
        json.dumps({"bench": "instructions", "rooms": args.rooms, "per_room_tick": round(per_tick)})
    )


if __name__ == "__main__":
    main()

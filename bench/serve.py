"""The server side of a benchmark run: the real GameApp in its own process.

    python bench/serve.py DATA_DIR [--cpu N] [--tick-rate 64] [--transport websockets|picows] [--watch [MS]]

Prints `READY <port> <public_key>` once listening. SIGUSR1 starts the
measured window (resets the tick statistics); SIGTERM ends it: one JSON line
of tick statistics on stdout, then a normal shutdown.

`--watch` tells where a stall went: a thread samples what the event loop's
thread is doing whenever the next tick is more than a period overdue (or
`MS` milliseconds, if given), and writes each sample to stderr (`STALL <ms>
late` and the innermost frames).
Samples missing for a stretch of the stall mean that neither thread ran: the
process was off its CPU. The thread wakes every 2 ms, which costs a little
CPU of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import uvloop

from gameserver import _accel
from gameserver.app import GameApp
from gameserver.config import Config
from gameserver.engine import TickStats
from gameserver.service import GameService


class GcPauses:
    """How long the garbage collector stopped the server, by generation: a
    full (generation 2) collection stops every room at once."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.max_ms = [0.0, 0.0, 0.0]

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        generation = info["generation"]
        self.count[generation] += 1
        pause = (time.perf_counter() - self.started) * 1000
        self.max_ms[generation] = max(self.max_ms[generation], pause)

    def summary(self) -> dict[str, object]:
        return {"gc_collections": self.count, "gc_max_pause_ms": [round(m, 2) for m in self.max_ms]}


class StallWatch:
    """Samples the event loop thread's stack while a tick is overdue."""

    def __init__(self, service: GameService, limit: float) -> None:
        self.armed = False  # from the start of the measured window
        self.service = service
        self.limit = limit  # seconds late
        self.loop_thread = threading.main_thread().ident
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.002)
            deadline = self.service.next_deadline()  # a read; the loop's thread writes
            late = time.monotonic() - deadline if deadline is not None else 0.0
            if self.armed and late > self.limit:
                frame = sys._current_frames().get(self.loop_thread)
                stack = "".join(traceback.format_stack(frame)[-4:]) if frame else ""
                print(f"STALL {late * 1000:.1f} ms late\n{stack}", file=sys.stderr, flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--tick-rate", type=int, default=64)
    parser.add_argument("--transport", choices=("websockets", "picows"), default=None)
    parser.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=0.0,
        metavar="MS",
        help="sample the stalls: ticks more than MS late (default: a period; see above)",
    )
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    # Every benchmark client comes from 127.0.0.1: no per-address cap.
    config = Config(
        host="127.0.0.1",
        port=0,
        data_dir=args.data_dir,
        tick_rate=args.tick_rate,
        max_connections_per_ip=0,
    )
    if args.transport is not None:
        config = dataclasses.replace(config, transport=args.transport)
    app = GameApp(config)
    default, _ = app.default_app()
    port = await app.start()
    print(f"READY {port} {default.public_key}", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    pauses = GcPauses()
    gc.callbacks.append(pauses.on_gc)
    watch = None
    if args.watch is not None:  # a tick a period late is about to be skipped
        watch = StallWatch(app.service, args.watch / 1000 or 1 / args.tick_rate)

    lua_before = [0.0]  # the server's time in Lua when the window started
    actions_before = [0]  # and the actions it had handled
    messages_in = app.service.stats.messages_in

    def reset() -> None:
        app.service.scheduler.stats = TickStats()
        lua_before[0] = app.service.stats.script_seconds
        actions_before[0] = messages_in["action"]
        pauses.reset()
        if watch is not None:
            watch.armed = True

    loop.add_signal_handler(signal.SIGUSR1, reset)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    summary = app.service.scheduler.stats.summary()
    summary["core"] = _accel.IMPL
    summary["transport"] = config.transport
    summary["rooms"] = len(app.service.directory)
    summary["script_seconds"] = app.service.stats.script_seconds - lua_before[0]
    summary["actions_in"] = messages_in["action"] - actions_before[0]
    summary.update(pauses.summary())
    print(json.dumps(summary), flush=True)
    await app.stop()


if __name__ == "__main__":
    uvloop.run(main())

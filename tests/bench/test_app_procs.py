"""bench/app's process helpers on real processes: which children of a server are workers."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.app.procs import children, workers

# A "server" that starts one worker the way uvicorn does (multiprocessing, spawn), which also
# starts multiprocessing's resource tracker as a second child, then says so and waits.
SERVER = """
import multiprocessing, sys, time
if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=time.sleep, args=(60,))
    worker.start()
    print(worker.pid, flush=True)
    sys.stdin.read()
    worker.terminate()
"""


def test_workers_are_the_servers_children_but_the_resource_tracker() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        worker_pid = int(server.stdout.readline())
        deadline = time.monotonic() + 30
        while len(children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the tracker may be listed a moment after the worker
        assert len(children(server.pid)) == 2
        assert workers(server.pid) == [worker_pid]
    finally:
        server.communicate("", timeout=30)

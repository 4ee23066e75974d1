"""Load for bench/app: wrk (Debian package) when on PATH, else a small threaded Python loop.

Both cycle over the app's three routes (/, /items/N, /users/N for N in 1..100) on
keep-alive connections and give the same figures: requests answered, errors, p50/p99 latency.
"""

from __future__ import annotations

import http.client
import json
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PATHS", "Load", "LoadError", "run_load", "wrk_available"]

USERS = 100
PATHS = tuple(path for n in range(1, USERS + 1) for path in ("/", f"/items/{n}", f"/users/{n}"))
_MARK = "BENCH_APP_JSON "
# wrk's per-thread Lua: the same cycle of paths, and a summary line we parse (wrk --latency
# prints the same percentiles for people).
_WRK_SCRIPT = """
local paths = {}
for n = 1, %(users)d do
  paths[#paths + 1] = "/"
  paths[#paths + 1] = "/items/" .. n
  paths[#paths + 1] = "/users/" .. n
end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class LoadError(RuntimeError):
    """The load generator failed, or the app answered with errors."""


@dataclass(frozen=True)
class Load:
    tool: str  # "wrk" or "python"
    requests: int  # answered with a 2xx/3xx
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(port: int, duration_s: float, connections: int, work: Path, tool: str) -> Load:
    """``duration_s`` of load on 127.0.0.1:``port`` with ``tool`` ("wrk" or "python");
    raises LoadError on any failed request."""
    load = (
        _wrk(port, duration_s, connections, work)
        if tool == "wrk"
        else _python(port, duration_s, connections)
    )
    if any(load.errors.values()):
        raise LoadError(f"{load.tool} saw failed requests on port {port}: {load.errors}")
    return load


def _wrk(port: int, duration_s: float, connections: int, work: Path) -> Load:
    script = work / "paths.lua"
    if not script.exists():
        script.write_text(_WRK_SCRIPT % {"users": USERS, "mark": _MARK})
    threads = min(2, connections)
    seconds = max(1, round(duration_s))  # wrk takes whole seconds only
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    done = subprocess.run(
        [*argv, "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)), None)
    if done.returncode != 0 or line is None:
        raise LoadError(f"wrk failed (exit {done.returncode}): {done.stderr or done.stdout}")
    figures = json.loads(line.removeprefix(_MARK))
    errors = {key: figures[key] for key in ("connect", "read", "write", "status", "timeout")}
    return Load(
        tool="wrk",
        # wrk counts non-2xx answers as requests too, and reports them as "status" errors.
        requests=figures["requests"] - figures["status"],
        duration_s=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1e3,
        p99_ms=figures["p99_us"] / 1e3,
        errors=errors,
    )


def _python(port: int, duration_s: float, connections: int) -> Load:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    deadline = time.monotonic() + duration_s

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        step = index
        try:
            while time.monotonic() < deadline:
                path = PATHS[step % len(PATHS)]
                step += connections
                start = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    failures[index] += 1
                else:
                    latencies[index].append(time.perf_counter() - start)
        except OSError:
            failures[index] += 1
        finally:
            conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    every = sorted(each for per_client in latencies for each in per_client)
    if not every:
        raise LoadError(f"no request to port {port} succeeded")
    cuts = statistics.quantiles(every, n=100, method="inclusive")
    return Load(
        tool="python",
        requests=len(every),
        duration_s=elapsed,
        p50_ms=cuts[49] * 1e3,
        p99_ms=cuts[98] * 1e3,
        errors={"status_or_connection": sum(failures)},
    )

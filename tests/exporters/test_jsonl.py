"""JSONLExporter: every event in exactly one complete final file, whatever the processes,
rotations, forks, crashes and failed writes; real files, real processes, no mocks."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profilis import SCHEMA_VERSION, __version__
from profilis.core.async_collector import AsyncCollector
from profilis.errors import ConfigError
from profilis.exporters import _jsonl_files
from profilis.exporters.jsonl import JSONLExporter
from tests.exporters.jsonl_helpers import final_files, leftovers, read_file, read_lines


def fn_events(count: int, start: int = 0, **extra: object) -> list[dict[str, object]]:
    return [
        {"kind": "FN", "ts_ns": 1_700_000_000_000_000_000 + n, "dur_ns": 1000, "fn": "f", "n": n}
        | extra
        for n in range(start, start + count)
    ]


def run_python(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ---------------------------------------------------------------------- many processes

PRODUCER = """
import json, sys
from profilis.core.async_collector import AsyncCollector
from profilis.exporters.jsonl import JSONLExporter

directory, proc, events, template, gzip_rotated = sys.argv[1:6]
exporter = JSONLExporter(
    directory, rotate_bytes=16_384, service="web", filename_template=template,
    gzip_rotated=gzip_rotated == "1",
)
collector = AsyncCollector(exporter, queue_size=int(events), batch_max=256)
for n in range(int(events)):
    event = {"kind": "FN", "ts_ns": n, "dur_ns": 1, "fn": "work", "proc": int(proc), "n": n}
    collector.enqueue(event)
collector.close(timeout=60)
health = collector.health()
print(json.dumps({"files": exporter.files_published, "exported": health.exported,
                  "dropped": dict(health.dropped), "errors": health.export_errors}))
"""


def run_producers(directory: Path, procs: int, events: int, template: str, gzip: bool) -> int:
    """Start ``procs`` producer processes at once; return the files they say they published."""
    gz = "1" if gzip else "0"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(directory), str(p), str(events), template, gz],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    published = 0
    for child in children:
        out, err = child.communicate(timeout=90)
        assert child.returncode == 0, err
        report = json.loads(out)
        assert report["exported"] == events and report["errors"] == 0, report
        assert sum(report["dropped"].values()) == 0, report
        published += report["files"]
    return published


def check_exactly_once(directory: Path, procs: int, events: int, published: int) -> None:
    files = final_files(directory)
    # Each process counted its own publications: one file fewer would be one overwritten.
    assert len(files) == published
    assert leftovers(directory) == []
    seen: Counter[tuple[int, int]] = Counter()
    for path in files:
        header, lines = read_file(path)
        assert header["schema_version"] == SCHEMA_VERSION
        assert header["profilis_version"] == __version__
        assert header["service"] == "web"
        assert lines, f"{path.name} holds no event"
        # Lines of one file come from one process: the one its header names.
        assert {e["proc"] for e in lines} == {lines[0]["proc"]}
        seen.update((e["proc"], e["n"]) for e in lines)
    expected = {(p, n) for p in range(procs) for n in range(events)}
    assert set(seen) == expected
    assert max(seen.values()) == 1


@pytest.mark.slow
def test_four_processes_lose_and_repeat_no_event_even_when_their_names_clash(
    tmp_path: Path,
) -> None:
    # No {pid} or {time} in the template: the four processes' sequences collide on every
    # name, so only the never-overwrite rule keeps their files apart.
    published = run_producers(tmp_path, 4, 50_000, "events-{seq:05d}.jsonl", gzip=False)

    check_exactly_once(tmp_path, 4, 50_000, published)
    assert published > 4 * 50  # small rotate_bytes: many rotations per process


@pytest.mark.slow
def test_gzip_files_are_complete_whenever_a_reader_looks(tmp_path: Path) -> None:
    partial: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        # Every final file seen at any moment must decompress and parse entirely.
        while not stop.is_set():
            for path in final_files(tmp_path):
                try:
                    read_file(path)
                except FileNotFoundError:
                    pass
                except Exception as exc:
                    partial.append(f"{path.name}: {exc!r}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        published = run_producers(tmp_path, 2, 20_000, "{service}-{pid}-{seq}.jsonl", gzip=True)
    finally:
        stop.set()
        thread.join()

    assert partial == []
    assert all(p.name.endswith(".jsonl.gz") for p in final_files(tmp_path))
    check_exactly_once(tmp_path, 2, 20_000, published)


# ---------------------------------------------------------------------- one process


def test_header_first_then_events_one_line_each(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path, service="checkout")
    exporter(fn_events(3))
    exporter(fn_events(2, start=3))
    exporter.finalize()

    [path] = final_files(tmp_path)
    header, lines = read_file(path)
    assert header["schema_version"] == SCHEMA_VERSION
    assert header["pid"] == os.getpid()
    assert header["service"] == "checkout"
    assert header["created"].endswith("Z") and isinstance(header["created_ns"], int)
    assert [e["n"] for e in lines] == [0, 1, 2, 3, 4]
    assert path.name.startswith("checkout-") and f"-{os.getpid()}-" in path.name
    assert exporter.events_written == 5 and exporter.files_published == 1


def test_active_file_is_not_a_final_file_until_finalize(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path)
    exporter(fn_events(1))

    assert final_files(tmp_path) == []
    active = exporter.active_path
    assert active is not None and active.endswith(".jsonl.active")
    assert str(os.getpid()) in os.path.basename(active)

    exporter.finalize()
    assert leftovers(tmp_path) == [] and len(final_files(tmp_path)) == 1
    assert exporter.active_path is None

    exporter(fn_events(1, start=1))  # a later batch starts a new file
    exporter.close()
    assert leftovers(tmp_path) == [] and len(final_files(tmp_path)) == 2


def test_finalize_without_events_leaves_nothing(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path)
    exporter.finalize()
    exporter([])
    exporter.close()
    assert list(tmp_path.iterdir()) == []


def test_rotation_by_size_keeps_files_under_the_limit(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path, rotate_bytes=2_000)
    for start in range(0, 200, 10):
        exporter(fn_events(10, start=start))
    exporter.close()

    files = final_files(tmp_path)
    assert len(files) == exporter.files_published > 5
    assert all(p.stat().st_size <= 2_000 for p in files)
    assert [e["n"] for p in files for e in read_file(p)[1]] == list(range(200))


def test_a_batch_larger_than_rotate_bytes_goes_whole_into_one_file(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path, rotate_bytes=100)
    exporter(fn_events(50))
    exporter(fn_events(50, start=50))
    exporter.close()

    assert [len(read_file(p)[1]) for p in final_files(tmp_path)] == [50, 50]


def test_rotation_by_age(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path, rotate_secs=0.05, rotate_bytes=0)
    first = None
    deadline = time.monotonic() + 5.0
    n = 0
    # Write until the age rule rotates (a deadline, not a guess at how long to sleep).
    while exporter.files_published == 0 and time.monotonic() < deadline:
        exporter(fn_events(1, start=n))
        first = first or exporter.active_path
        n += 1
        time.sleep(0.01)
    exporter.close()

    assert exporter.files_published == 2
    assert sum(len(read_file(p)[1]) for p in final_files(tmp_path)) == n


def test_many_rotations_in_one_second_never_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh sequence, so the names the exporter will try are known in advance...
    monkeypatch.setattr(_jsonl_files, "_SEQUENCE", itertools.count(1))
    # ...and the first five are taken already, by files that must survive untouched.
    for seq in range(1, 6):
        (tmp_path / f"events-{seq}.jsonl").write_text(f"someone else's file {seq}\n")
    exporter = JSONLExporter(tmp_path, rotate_bytes=1, filename_template="events-{seq}.jsonl")
    started = time.time()
    for n in range(30):
        exporter(fn_events(1, start=n))
    exporter.close()

    assert time.time() - started < 1.0  # all thirty rotations within one second
    for seq in range(1, 6):
        assert (tmp_path / f"events-{seq}.jsonl").read_text() == f"someone else's file {seq}\n"
    ours = [p for p in final_files(tmp_path) if not p.read_text().startswith("someone")]
    assert sorted(p.name for p in ours) == sorted(f"events-{s}.jsonl" for s in range(6, 36))
    assert sorted(read_file(p)[1][0]["n"] for p in ours) == list(range(30))


def test_gzip_rotated_files(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path, rotate_bytes=1_000, gzip_rotated=True, gzip_level=1)
    for start in range(0, 100, 10):
        exporter(fn_events(10, start=start))
    exporter.close()

    files = final_files(tmp_path)
    assert files and all(p.name.endswith(".jsonl.gz") for p in files)
    assert len(files) == exporter.files_published
    assert leftovers(tmp_path) == []
    assert sorted(e["n"] for p in files for e in read_file(p)[1]) == list(range(100))


def test_odd_values_are_written_and_unwritable_events_counted(tmp_path: Path) -> None:
    circular: dict[str, object] = {"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "loop"}
    circular["self"] = circular
    exporter = JSONLExporter(tmp_path)
    exporter(
        [
            {"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "f", "tags": {"a", "b"} and "set"},
            {"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "big", "huge": 2**70},
            {"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "é", "when": time.struct_time},
            circular,
        ]
    )
    exporter.close()

    [path] = final_files(tmp_path)
    _, lines = read_file(path)
    assert [e["fn"] for e in lines] == ["f", "big", "é"]
    assert lines[1]["huge"] == 2**70
    assert exporter.events_written == 3 and exporter.events_unencodable == 1


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"rotate_bytes": -1}, "rotate_bytes"),
        ({"rotate_secs": "soon"}, "rotate_secs"),
        ({"gzip_rotated": 1}, "gzip_rotated"),
        ({"gzip_level": 10}, "gzip_level"),
        ({"service": ""}, "service"),
        ({"filename_template": "events.jsonl"}, "filename_template"),  # no {seq}
        ({"filename_template": "{seq}-{host}.jsonl"}, "filename_template"),
        ({"filename_template": "../{seq}.jsonl"}, "filename_template"),
        ({"filename_template": "{seq}.jsonl.active"}, "filename_template"),
        ({"filename_template": "{seq"}, "filename_template"),
    ],
)
def test_bad_settings_name_themselves(
    tmp_path: Path, kwargs: dict[str, object], setting: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        JSONLExporter(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert caught.value.setting == setting


def test_the_collector_finalizes_its_exporter_on_close(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path)
    collector: AsyncCollector[dict[str, object]] = AsyncCollector(exporter)
    for event in fn_events(500):
        collector.enqueue(event)
    collector.close(timeout=10)

    assert leftovers(tmp_path) == []
    assert sum(len(read_file(p)[1]) for p in final_files(tmp_path)) == 500


# ---------------------------------------------------------------------- failures and crashes


def test_a_failed_write_leaves_no_partial_line(tmp_path: Path) -> None:
    # A file-size limit makes the kernel write part of a batch, then refuse (EFBIG): the
    # real shape of a disk filling up mid-write.
    result = run_python(
        f"""
        import resource, signal, json
        from profilis.exporters.jsonl import JSONLExporter
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        exporter = JSONLExporter({str(tmp_path)!r}, rotate_bytes=0)
        resource.setrlimit(resource.RLIMIT_FSIZE, (5_000, 5_000))
        failures = 0
        for start in range(0, 2_000, 30):
            batch = [{{"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "f", "n": n}}
                     for n in range(start, start + 30)]
            try:
                exporter(batch)
            except OSError:
                failures += 1
        print(json.dumps({{"failures": failures, "written": exporter.events_written}}))
        """
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"] > 0

    [active] = [p for p in tmp_path.iterdir() if p.name.endswith(".active")]
    lines = read_lines(active)  # every line whole, the file ends with a newline
    assert len(lines) - 1 == report["written"]


def test_files_of_a_killed_process_are_recovered_by_the_next_exporter(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import os, signal
        from profilis.exporters.jsonl import JSONLExporter
        exporter = JSONLExporter({str(tmp_path)!r}, service="victim")
        exporter([{{"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "f", "n": n}} for n in range(7)])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert result.returncode == -signal.SIGKILL
    assert final_files(tmp_path) == [] and len(leftovers(tmp_path)) == 1

    survivor = JSONLExporter(tmp_path, service="survivor")

    [path] = final_files(tmp_path)
    header, lines = read_file(path)
    assert header["service"] == "victim" and path.name.startswith("victim-")
    assert [e["n"] for e in lines] == list(range(7))
    assert leftovers(tmp_path) == [] and survivor.files_published == 1


def test_recovery_leaves_the_files_of_live_writers_alone(tmp_path: Path) -> None:
    alive = JSONLExporter(tmp_path)
    alive(fn_events(3))
    active = alive.active_path

    JSONLExporter(tmp_path)  # its recovery finds the file locked

    assert active is not None and os.path.exists(active)
    alive(fn_events(3, start=3))
    alive.close()
    [path] = final_files(tmp_path)
    assert [e["n"] for e in read_file(path)[1]] == list(range(6))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path)
    exporter(fn_events(2, who="parent"))
    pid = os.fork()
    if pid == 0:  # the child: its batches must not land in the parent's file
        code = 1
        try:
            exporter(fn_events(3, who="child"))
            exporter.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    exporter(fn_events(2, start=2, who="parent"))
    exporter.close()

    by_pid = {}
    for path in final_files(tmp_path):
        header, lines = read_file(path)
        by_pid[header["pid"]] = [(e["who"], e["n"]) for e in lines]
    assert by_pid == {
        os.getpid(): [("parent", n) for n in range(4)],
        pid: [("child", n) for n in range(3)],
    }


def test_recovery_finishes_pending_gzips_and_clears_only_stale_temp_files(tmp_path: Path) -> None:
    header = {"kind": "header", "schema_version": "2", "service": "web", "pid": 4242}
    body = json.dumps({**header, "created_ns": 1_700_000_000_000_000_000}) + "\n"
    body += "".join(json.dumps(e) + "\n" for e in fn_events(4))
    (tmp_path / "web-4242-0123abcd.jsonl.pending").write_text(body)
    stale = tmp_path / ".web-4242-0123abcd.profilis-tmp"
    fresh = tmp_path / ".web-4243-4567ef01.profilis-tmp"
    stale.write_text("half a gzip")
    fresh.write_text("a writer is about to lock this")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))

    exporter = JSONLExporter(tmp_path, gzip_rotated=True)

    [path] = final_files(tmp_path)
    assert path.name.startswith("web-20231114T221320Z-4242-") and path.name.endswith(".gz")
    assert [e["n"] for e in read_file(path)[1]] == list(range(4))
    assert not stale.exists() and fresh.exists()
    assert exporter.files_published == 1


def test_recovery_does_not_duplicate_a_file_already_published(tmp_path: Path) -> None:
    # The writer died between linking the final name and unlinking the active one.
    final = tmp_path / "web-20231114T221320Z-4242-000001.jsonl"
    final.write_text(json.dumps({"kind": "header", "pid": 4242}) + "\n" + '{"kind":"FN"}\n')
    os.link(final, tmp_path / "web-4242-0123abcd.jsonl.active")

    JSONLExporter(tmp_path)

    assert final_files(tmp_path) == [final] and leftovers(tmp_path) == []


def test_a_lone_surrogate_still_gives_a_valid_utf8_line(tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path)
    exporter([{"kind": "FN", "ts_ns": 1, "dur_ns": 1, "fn": "bad\udcff"}])
    exporter.close()

    [path] = final_files(tmp_path)
    path.read_bytes().decode("utf-8")  # strict: raises on invalid UTF-8
    assert read_file(path)[1][0]["fn"] == "bad\udcff"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.text(), json_values, max_size=4), min_size=1, max_size=20))
def test_whatever_json_values_events_hold_they_read_back_unchanged(
    events: list[dict[str, object]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        exporter = JSONLExporter(tmp, rotate_bytes=512)
        for start in range(0, len(events), 3):
            exporter(events[start : start + 3])
        exporter.close()
        lines = [e for p in final_files(Path(tmp)) for e in read_file(p)[1]]
    assert lines == events

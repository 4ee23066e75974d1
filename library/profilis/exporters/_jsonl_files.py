"""File mechanics of the JSONL exporter: unique names, atomic publishing, gzip, crash recovery.

Used only by ``profilis.exporters.jsonl``. A file is written under a private name and only
ever *linked* to its final name (``os.link`` fails if that name exists, so nothing is ever
overwritten), so a reader listing final names sees complete files, each event in one of them.
Live files are ``flock``-ed by their writer for their whole life: a file found unlocked belongs
to a dead process and may be finished by anyone (``recover``), whatever pid namespace it was in.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import itertools
import json
import logging
import os
import queue
import shutil
import string
import sys
import threading
import time
from collections.abc import Iterator
from typing import Final

from profilis.errors import ConfigError

if sys.platform != "win32":  # Windows has no flock: files are still written safely, not recovered
    import fcntl

__all__ = [
    "ACTIVE_SUFFIX",
    "PENDING_SUFFIX",
    "TMP_SUFFIX",
    "Compressor",
    "FileNamer",
    "compress",
    "link_new",
    "locked",
    "publish",
    "read_header",
    "recover",
    "safe_service",
]

log = logging.getLogger("profilis.exporters.jsonl")

ACTIVE_SUFFIX: Final = ".jsonl.active"  # being written by a live process
PENDING_SUFFIX: Final = ".jsonl.pending"  # rotated, waiting for gzip
TMP_SUFFIX: Final = ".profilis-tmp"  # hidden scratch files (a file being created or gzipped)
_RESERVED: Final = (ACTIVE_SUFFIX, PENDING_SUFFIX, TMP_SUFFIX, ".gz")
_TEMPLATE_FIELDS: Final = frozenset({"service", "pid", "seq", "time"})
# Errors of os.link on file systems without hard links; those fall back to a checked rename.
_NO_HARDLINKS: Final = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})
# Each attempt takes a new sequence number, so only a crowded directory gets near this.
_NAME_ATTEMPTS: Final = 10_000
# One sequence per process, shared by every exporter in it: names differ by pid across
# processes and by this number within one, even for many rotations in the same second.
_SEQUENCE: Final = itertools.count(1)
# Unlocked temp files older than this are left by dead writers (see _is_stale).
_STALE_TMP_S: Final = 60.0


class FileNamer:
    """Final file names from ``filename_template`` and a process-wide sequence."""

    def __init__(self, directory: str, template: str) -> None:
        self.directory = directory
        self.template = _check_template(template)
        self._seq = _SEQUENCE

    def candidates(self, service: str, pid: int, created_ns: int) -> Iterator[str]:
        """Paths to try in turn, each with the next sequence number (never the same twice)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created_ns // 1_000_000_000))
        safe = safe_service(service)
        for _ in range(_NAME_ATTEMPTS):
            name = self.template.format(service=safe, pid=pid, seq=next(self._seq), time=stamp)
            yield os.path.join(self.directory, name)


def safe_service(service: str) -> str:
    """``service`` reduced to characters that are safe in a file name on any system."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in service)
    return cleaned.lstrip(".")[:64] or "unknown_service"


def _check_template(template: object) -> str:
    accepted = (
        "a file name using {seq} (and optionally {service}, {pid}, {time}), "
        f"not ending in {', '.join(_RESERVED)}"
    )
    if not isinstance(template, str):
        raise ConfigError("filename_template", accepted, template)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        sample = template.format(service="svc", pid=1, seq=1, time="20000101T000000Z")
    except (ValueError, KeyError, IndexError):
        raise ConfigError("filename_template", accepted, template) from None
    # {seq} is what makes a retry produce a new name; without it a clash would repeat forever.
    if "seq" not in fields or not fields <= _TEMPLATE_FIELDS:
        raise ConfigError("filename_template", accepted, template)
    if "/" in sample or os.sep in sample or sample.startswith(".") or sample.endswith(_RESERVED):
        raise ConfigError("filename_template", accepted, template)
    return template


def link_new(src: str, dst: str) -> None:
    """Give ``src`` the extra name ``dst``; ``FileExistsError`` if ``dst`` exists (no overwrite)."""
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            raise
        # No hard links here: check-then-rename leaves a tiny race, the best this system allows.
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "file exists", dst) from None
        os.rename(src, dst)


def publish(src: str, candidates: Iterator[str]) -> str:
    """Move the finished file ``src`` to the first free name of ``candidates``; return it."""
    for dst in candidates:
        try:
            link_new(src, dst)
        except FileExistsError:
            continue
        with contextlib.suppress(FileNotFoundError):  # gone already if link_new renamed
            os.unlink(src)
        return dst
    raise FileExistsError(errno.EEXIST, "no free file name left", src)


def locked(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` if nobody holds it; released when ``fd`` is closed."""
    if sys.platform == "win32":  # no recovery there, so nothing competes for the file
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def read_header(fd: int) -> dict[str, object] | None:
    """The header (first line) of the file open as ``fd``, or None if it has none."""
    first = os.pread(fd, 4096, 0).split(b"\n", 1)[0]
    with contextlib.suppress(ValueError):
        header = json.loads(first)
        if isinstance(header, dict) and header.get("kind") == "header":
            return header
    return None


def _has_events(fd: int) -> bool:
    # Anything after the header's newline is an event line.
    head = os.pread(fd, 4096, 0)
    cut = head.find(b"\n")
    return cut >= 0 and (cut + 1 < len(head) or os.fstat(fd).st_size > cut + 1)


def _names_of(fd: int, namer: FileNamer) -> Iterator[str]:
    """Final-name candidates for a finished file, from its own header (any process wrote it)."""
    header = read_header(fd) or {}
    service, pid, created = header.get("service"), header.get("pid"), header.get("created_ns")
    return namer.candidates(
        service if isinstance(service, str) else "unknown_service",
        pid if isinstance(pid, int) else 0,
        created if isinstance(created, int) else os.fstat(fd).st_mtime_ns,
    )


def _open_claimed(path: str) -> int | None:
    """Open and lock ``path``; None if it is gone, or alive (locked) in some process."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        # Still that file under that name once locked? (Its writer may have moved it on.)
        if locked(fd) and os.stat(path).st_ino == os.fstat(fd).st_ino:
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None


def compress(pending: str, namer: FileNamer, level: int) -> str | None:
    """gzip ``pending`` to a final ``.gz`` name and remove it; None if someone else did.

    The compressed bytes go to a hidden temp file first, so no reader ever sees a ``.gz``
    until it is complete. If compression fails, the plain file is published instead.
    """
    fd = _open_claimed(pending)
    if fd is None:
        return None
    try:
        final_names = _names_of(fd, namer)
        tmp = os.path.join(
            namer.directory, f".{os.path.basename(pending)}.{os.urandom(4).hex()}{TMP_SUFFIX}"
        )
        try:
            with open(tmp, "xb") as raw:
                locked(raw.fileno())  # a crashed compression leaves an unlocked temp: garbage
                with (
                    os.fdopen(os.dup(fd), "rb") as src,
                    gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=level) as gz,
                ):
                    shutil.copyfileobj(src, gz, 1 << 20)
                # The gzip trailer still sits in ``raw``'s buffer: out with it before the name.
                raw.flush()
                done = publish(tmp, (f"{name}.gz" for name in final_names))
        except OSError:
            log.warning("profilis: gzip of %s failed, keeping it plain", pending, exc_info=True)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return publish(pending, final_names)
        os.unlink(pending)
        return done
    finally:
        os.close(fd)


def recover(namer: FileNamer, gzip_level: int | None) -> int:
    """Finish the files of dead writers in the directory; return how many were published.

    Unlocked active files are published (or, with ``gzip_level``, compressed); unlocked
    pending files are compressed; old unlocked temp files are deleted. Locked ones are alive.
    """
    if sys.platform == "win32":  # liveness cannot be told, so touch nothing
        return 0
    published = 0
    for entry in os.scandir(namer.directory):
        path = entry.path
        try:
            if entry.name.endswith(ACTIVE_SUFFIX):
                published += _recover_active(path, namer, gzip_level)
            elif entry.name.endswith(PENDING_SUFFIX):
                published += compress(path, namer, gzip_level or 6) is not None
            elif entry.name.endswith(TMP_SUFFIX) and _is_stale(entry):
                fd = _open_claimed(path)
                if fd is not None:
                    os.unlink(path)
                    os.close(fd)
        except OSError:
            log.warning("profilis: could not recover %s", path, exc_info=True)
    return published


def _is_stale(entry: os.DirEntry[str]) -> bool:
    # A writer locks its temp file a moment after creating it: in that moment the file is
    # unlocked but not garbage, so only temp files old as well as unlocked are removed.
    return time.time() - entry.stat().st_mtime > _STALE_TMP_S


def _recover_active(path: str, namer: FileNamer, gzip_level: int | None) -> int:
    fd = _open_claimed(path)
    if fd is None:
        return 0
    try:
        # nlink > 1: its writer died between linking the final name and unlinking this one.
        if os.fstat(fd).st_nlink > 1 or not _has_events(fd):
            os.unlink(path)
            return 0
        if gzip_level is None:
            publish(path, _names_of(fd, namer))
            return 1
        pending = path[: -len(ACTIVE_SUFFIX)] + PENDING_SUFFIX
        os.rename(path, pending)  # unique: the active name was
    finally:
        os.close(fd)
    return compress(pending, namer, gzip_level) is not None


class Compressor:
    """gzips rotated files on a daemon thread, so a rotation never waits for compression."""

    def __init__(self, namer: FileNamer, level: int) -> None:
        self._namer = namer
        self._level = level
        self._pid = -1  # no thread yet (or one that belongs to the parent, after a fork)
        self._jobs: queue.Queue[str | None] = queue.Queue()
        #: Files this compressor published (not those another process's recovery took over).
        self.published = 0

    def submit(self, pending: str) -> None:
        if self._pid != os.getpid():
            # First use, or a forked child: the parent's queue and thread are not ours.
            self._jobs = queue.Queue()
            self.published = 0
            threading.Thread(target=self._run, name="profilis-jsonl-gzip", daemon=True).start()
            self._pid = os.getpid()
        self._jobs.put(pending)

    def wait(self) -> None:
        """Return once every submitted file is compressed (or published plain)."""
        if self._pid == os.getpid():
            self._jobs.join()

    def stop(self) -> None:
        if self._pid == os.getpid():
            self._jobs.put(None)
            self._jobs.join()
            self._pid = -1

    def _run(self) -> None:
        jobs = self._jobs
        while True:
            pending = jobs.get()
            try:
                if pending is None:
                    return
                if compress(pending, self._namer, self._level) is not None:
                    self.published += 1
            except Exception:  # the pending file stays on disk; the next recover() retries it
                log.warning("profilis: could not publish %s", pending, exc_info=True)
            finally:
                jobs.task_done()

"""A real small file system to fill: a tmpfs mounted for one test, and ballast to fill it."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ._shared import skip_or_fail


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, size_kib: int) -> Iterator[Path]:
    """Mount a ``size_kib`` tmpfs at ``mountpoint`` for the block (skip if not permitted)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        skip_or_fail(
            f"needs permission to mount a tmpfs (root; CI runs as root): "
            f"{mounted.stderr.strip() or mounted.returncode}"
        )
    try:
        yield mountpoint
    finally:
        # Lazily: a process the test failed to stop must not turn into a second error.
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(path: Path, leave: int = 0, chunk: int = 4096) -> int:
    """Write ``path`` until its file system has at most ``leave`` bytes free; bytes written."""
    written = 0
    block = b"\0" * chunk
    with open(path, "ab", buffering=0) as fh:
        while True:
            st = os.statvfs(path)
            if st.f_bavail * st.f_frsize <= leave:
                break
            try:
                written += fh.write(block) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return written


def remount(mountpoint: Path, option: str) -> None:
    """Remount ``mountpoint`` with ``option`` (``ro`` or ``rw``)."""
    subprocess.run(["mount", "-o", f"remount,{option}", str(mountpoint)], check=True)

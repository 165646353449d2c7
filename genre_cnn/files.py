"""Write a directory completely or not at all, and keep two writers from sharing one."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import GenreCnnError

__all__ = ["atomic_directory", "exclusive_lock", "LockedError"]


class LockedError(GenreCnnError):
    """Another live process is writing the same output."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner_pid(path: Path) -> int | None:
    """The process id in a ``.NAME.tmp-PID``/``.old-PID`` name or a lock file, if any."""
    try:
        text = path.read_text().strip() if path.is_file() else path.name.rsplit("-", 1)[-1]
        return int(text)
    except (OSError, ValueError):
        return None


def _recover(final: Path) -> None:
    """Undo what a killed writer left beside ``final``.

    A writer killed between moving the old ``final`` aside and renaming the new one into place
    leaves ``.NAME.old-PID`` and no ``final``: the old one is put back. Temporary folders of dead
    writers are deleted.
    """
    for leftover in sorted(final.parent.glob(f".{final.name}.old-*")):
        pid = _owner_pid(leftover)
        if pid is not None and _pid_alive(pid) and pid != os.getpid():
            continue
        if not final.exists():
            os.replace(leftover, final)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    for leftover in final.parent.glob(f".{final.name}.tmp-*"):
        pid = _owner_pid(leftover)
        if pid is None or not _pid_alive(pid) or pid == os.getpid():
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``final`` only if the block succeeds.

    The temporary directory sits beside ``final`` (same file system, so the rename is cheap). If
    the block raises, it is removed and ``final`` is untouched. Otherwise the old ``final`` (if
    any) is moved aside, the new one renamed into place, and the old one deleted. A process
    killed at any moment leaves either the old or the new ``final``, restored by the next call.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _recover(final)
    temporary = final.parent / f".{final.name}.tmp-{os.getpid()}"
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    previous = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, previous)
    os.replace(temporary, final)
    shutil.rmtree(previous, ignore_errors=True)


@contextlib.contextmanager
def exclusive_lock(target: Path, *, command: str) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target`` so a second writer is refused, not interleaved.

    A lock left by a process that no longer runs (killed) is taken over.

    Raises
    ------
    LockedError
        A live process holds the lock; the message names it and the lock file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _owner_pid(lock)
            if pid is not None and _pid_alive(pid):
                raise LockedError(
                    f"{target}: another '{command}' (process {pid}) is writing it; wait for it to "
                    f"finish, or delete {lock} if no such process is running"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its writer was killed
            continue
        with os.fdopen(handle, "w") as file:
            file.write(f"{os.getpid()}\n")
        break
    else:
        raise LockedError(f"{target}: could not take the lock {lock}; delete it and retry")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)

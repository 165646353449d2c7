"""Write a directory completely or not at all, and keep two writers from sharing one."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence

from genre_cnn.errors import LockedError, OutputError

__all__ = ["FolderKind", "check_output_folder", "ensure_folder", "atomic_directory", "atomic_file",
           "exclusive_lock", "release_inherited_locks", "pid_alive", "machine_lock"]

#: Open lock files of :func:`exclusive_lock` held by this process (a forked child inherits them).
_held_locks: set = set()


@dataclasses.dataclass(frozen=True)
class FolderKind:
    """A kind of folder genre-cnn writes whole, recognisable by files it always contains.

    Parameters
    ----------
    name : str
        What the folder is, for messages ("dataset", "model").
    markers : tuple of str
        Files that every folder of this kind holds; a folder holding all of them may be replaced.
    alternatives : tuple of tuple of str
        Other complete sets of marker files (e.g. a model saved by another kind of trainer).
    """

    name: str
    markers: tuple[str, ...]
    alternatives: tuple[tuple[str, ...], ...] = ()

    def recognises(self, folder: Path) -> bool:
        """Whether ``folder`` holds every marker of one of this kind's marker sets."""
        return any(all((folder / name).is_file() for name in markers)
                   for markers in (self.markers, *self.alternatives))


def check_output_folder(final: str | os.PathLike, *, kind: FolderKind,
                        inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse an output folder whose replacement would lose a user's files.

    ``final`` may be replaced only when it does not exist yet, is an empty folder, or is a folder
    of ``kind`` (recognised by its marker files). It may not be the current folder (or hold it),
    an existing file, nor be, contain or lie inside any of ``inputs``.

    Returns
    -------
    Path
        ``final``.

    Raises
    ------
    OutputError
        The message names the folder, says what it is and what to do instead.
    """
    final = Path(final)
    target = final.resolve()
    here = Path.cwd().resolve()
    if target == here or target in here.parents:
        raise OutputError(f"{final}: is the current folder (or holds it) and cannot be replaced by a {kind.name}; "
                          f"name a new folder, e.g. {final / kind.name}")
    for source in inputs:
        source_path = Path(source)
        resolved = source_path.resolve()
        if target == resolved or target in resolved.parents or resolved in target.parents:
            relation = ("is" if target == resolved else "holds" if target in resolved.parents else "lies inside")
            raise OutputError(f"{final}: {relation} the input {source_path}; writing the {kind.name} there "
                              f"would mix it with (or delete) the input: choose a folder outside it")
    if final.is_symlink() and not final.exists():
        raise OutputError(f"{final}: is a broken symbolic link; remove it or choose another folder")
    if final.exists() and not final.is_dir():
        raise OutputError(f"{final}: is an existing file, not a {kind.name} folder; choose another name "
                          "(genre-cnn never replaces a file with a folder)")
    if final.is_dir() and not kind.recognises(final):
        try:
            contents = sorted(entry.name for entry in final.iterdir())
        except OSError as exc:
            raise OutputError(f"{final}: cannot be read ({exc.strerror}); choose another folder") from None
        if contents:
            shown = ", ".join(contents[:3]) + (", ..." if len(contents) > 3 else "")
            raise OutputError(
                f"{final}: holds files that are not a genre-cnn {kind.name} ({shown}); genre-cnn replaces only "
                f"a {kind.name} folder or an empty one: choose a new folder, or empty this one yourself"
            )
    return final


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner_pid(path: Path) -> int | None:
    """The process id in a ``.NAME.tmp-PID``/``.old-PID`` name, if any."""
    try:
        return int(path.name.rsplit("-", 1)[-1])
    except ValueError:
        return None


def _recover(final: Path) -> None:
    """Undo what a killed writer left beside ``final``.

    A writer killed between moving the old ``final`` aside and renaming the new one into place
    leaves ``.NAME.old-PID`` and no ``final``: the old one is put back. Temporary folders of dead
    writers are deleted.
    """
    for leftover in sorted(final.parent.glob(f".{final.name}.old-*")):
        pid = _owner_pid(leftover)
        if pid is not None and pid_alive(pid) and pid != os.getpid():
            continue
        if not final.exists():
            os.replace(leftover, final)
        else:
            _remove(leftover)
    for leftover in final.parent.glob(f".{final.name}.tmp-*"):
        pid = _owner_pid(leftover)
        if pid is None or not pid_alive(pid) or pid == os.getpid():
            _remove(leftover)


def ensure_folder(folder: str | os.PathLike, *, what: str) -> Path:
    """Create ``folder`` (and its parents) for ``what`` files written into it by name.

    Raises
    ------
    OutputError
        ``folder`` is an existing file, or cannot be created.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is an existing file, not a folder for the {what}; choose another name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder for the {what} ({exc.strerror}); "
                          "choose another place") from None
    return folder


def _remove(path: Path) -> None:
    """Delete a folder (or a file) left by genre-cnn, whatever it is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(final: Path, *, kind: FolderKind, inputs: Sequence[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``final`` only if the block succeeds.

    ``final`` must pass :func:`check_output_folder` for ``kind`` and ``inputs`` first (checked
    again here, just before anything is written).

    The temporary directory sits beside ``final`` (same file system, so the rename is cheap). If
    the block raises, it is removed and ``final`` is untouched. Otherwise the old ``final`` (if
    any) is moved aside, the new one renamed into place, and the old one deleted. A process
    killed at any moment leaves either the old or the new ``final``, restored by the next call.
    """
    final = check_output_folder(final, kind=kind, inputs=inputs)
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
    _remove(previous)


@contextlib.contextmanager
def exclusive_lock(target: Path, *, command: str) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target`` so a second writer is refused, not interleaved.

    The lock is the operating system's (``flock``) on that file, taken atomically: it cannot be
    seen half-written, and it dies with its process, so the lock of a killed run is free at once.
    The file holds the owner's process id, for the message.

    Raises
    ------
    LockedError
        A live process holds the lock; the message names it and the lock file.
    """
    import fcntl

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    while True:
        handle = open(lock, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise LockedError(
                f"{target}: another '{command}' (process {owner}) is writing it; wait for it to "
                f"finish, or delete {lock} if no such process is running"
            ) from None
        try:  # the previous holder may have deleted the file between our open and our lock
            current = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held_locks.add(handle)
    try:
        yield
    finally:
        _held_locks.discard(handle)
        lock.unlink(missing_ok=True)  # while still locked: a waiting opener re-checks the inode
        handle.close()


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Wait for, then hold, a lock that every process of this user on this machine shares.

    For work that must not run in two processes at once, such as filling a cache on disk that
    other processes read. The lock (``flock`` on ``genre-cnn-NAME-UID.lock`` in the temporary
    folder) dies with its holder, so a killed holder never blocks the others. Where it cannot be
    taken (Windows has no ``flock``; the file belongs to another user; the file system has no
    locks), nothing is locked.

    Parameters
    ----------
    name : str
        What is locked, a plain word (it becomes part of the lock file's name).

    Yields
    ------
    None
        While the lock is held.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    import tempfile

    path = Path(tempfile.gettempdir()) / f"genre-cnn-{name}-{os.getuid()}.lock"
    handle = None
    try:
        handle = open(path, "a", encoding="utf-8")
        fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError:  # another user's file of that name, a file system without locks: go on unlocked
        if handle is not None:
            handle.close()
        yield
        return
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def release_inherited_locks() -> None:
    """Close this process's copies of the locks of :func:`exclusive_lock` (in a forked child).

    An ``flock`` belongs to the open file, which a forked child shares: a child that outlived its
    parent would keep the parent's output locked. Closing the child's copy leaves the parent's
    lock as it is.
    """
    for handle in list(_held_locks):
        _held_locks.discard(handle)
        handle.close()


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Write a single file under a temporary name beside ``final``, renamed over it on success.

    Readers see the previous file or the complete new one, never half of it; on an error the
    temporary file is removed and ``final`` is left as it was.
    """
    final = Path(final)
    partial = final.with_name(f".{final.stem}.partial{final.suffix}")
    try:
        yield partial
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)

"""The one place that knows audio tag formats: read a file's genre, find its audio, write a genre safely.

Tags are read and written with `mutagen <https://mutagen.readthedocs.io>`_:

=================  ===========================  ==============================================
files              genre field                  field naming a genre that genre-cnn wrote
=================  ===========================  ==============================================
MP3, WAV           ID3 ``TCON`` (v1, v2.3,      ``TXXX:GENRE_CNN``
                   v2.4; numeric genres named)
FLAC, Ogg Vorbis,  Vorbis comment ``GENRE``     Vorbis comment ``GENRE_CNN``
Ogg Opus
M4A / MP4          ``©gen``                     ``----:com.apple.iTunes:GENRE_CNN``
=================  ===========================  ==============================================

A file is written only through :func:`write_genre`: the old tag bytes go to an undo journal
(:class:`TagJournal`) first, the tags are written to a copy beside the file, the copy's audio
stream is checked to be byte-identical to the original's, and the copy is renamed over the
original. A file is therefore always either untouched or fully tagged, and
:func:`undo_journal` restores it byte for byte.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import mutagen
from mutagen.flac import FLAC
from mutagen.id3 import TCON, TXXX
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4FreeForm
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from genre_cnn.errors import TagError
from genre_cnn.runtime.files import pid_alive

__all__ = ["TAG_FAMILIES", "SOURCE_FIELD", "FileTags", "supports_tags", "read_tags", "audio_digest", "is_read_only",
           "write_genre", "TagJournal", "UndoSummary", "undo_journal", "remove_stale_copies"]

#: File name endings (lower case) whose tags are read and written, and the tag family of each.
TAG_FAMILIES = {".mp3": "id3", ".wav": "id3", ".flac": "vorbis", ".ogg": "vorbis", ".oga": "vorbis",
                ".opus": "vorbis", ".m4a": "mp4", ".mp4": "mp4"}
#: Name of the field that says a genre was written by genre-cnn, and by which model.
SOURCE_FIELD = "GENRE_CNN"
_MP4_SOURCE = f"----:com.apple.iTunes:{SOURCE_FIELD}"


@dataclasses.dataclass(frozen=True)
class FileTags:
    """What a file's tags say.

    Attributes
    ----------
    path : Path
    genres : tuple of str
        The genre values in the file's own order (several for a multi-valued tag; ID3v1 and MP4
        numeric genres as their names); empty when the file has no genre tag.
    artist : str or None
        The artist (album artist when there is no track artist).
    source : str or None
        The :data:`SOURCE_FIELD` value when genre-cnn wrote the genre, e.g.
        ``"genre-cnn rock-v1@1a2b3c4d p=0.93"``.
    """

    path: Path
    genres: tuple[str, ...]
    artist: Optional[str]
    source: Optional[str]


def supports_tags(path: str | os.PathLike) -> bool:
    """True when :func:`read_tags` and :func:`write_genre` know the file's format (by its ending)."""
    return Path(path).suffix.lower() in TAG_FAMILIES


def _family(path: Path) -> str:
    family = TAG_FAMILIES.get(path.suffix.lower())
    if family is None:
        what = f"{path.suffix} files" if path.suffix else "files without an ending"
        raise TagError(f"{path}: tags of {what} are not supported; "
                       f"supported: {', '.join(sorted(TAG_FAMILIES))}")
    return family


def _open(path: Path):
    """The mutagen file object of ``path`` (its tags may be ``None``)."""

    kinds = {".mp3": [MP3], ".wav": [WAVE], ".flac": [FLAC], ".m4a": [MP4], ".mp4": [MP4],
             ".opus": [OggOpus, OggVorbis]}.get(path.suffix.lower(), [OggVorbis, OggOpus])
    try:
        opened = mutagen.File(path, options=kinds)
    except Exception as exc:  # mutagen's errors carry no common type beyond MutagenError/OSError
        raise TagError(f"{path}: cannot read its tags ({_first_line(exc)}); is it a complete "
                       f"{path.suffix.lstrip('.')} file?") from None
    if opened is None:
        raise TagError(f"{path}: not a {path.suffix.lstrip('.')} file that mutagen recognises; check the file's ending")
    return opened


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_tags(path: str | os.PathLike) -> FileTags:
    """Read the genre, artist and genre-cnn source fields of an audio file.

    Raises
    ------
    TagError
        Unsupported format, or tags that cannot be read (a damaged file).
    """
    path = Path(path)
    family = _family(path)
    tags = _open(path).tags
    if tags is None:
        return FileTags(path, (), None, None)
    if family == "id3":
        genres = [genre for frame in tags.getall("TCON") for genre in frame.genres]
        artist = _first_text(tags.getall("TPE1")) or _first_text(tags.getall("TPE2"))
        source = _first_text(tags.getall(f"TXXX:{SOURCE_FIELD}"))
    elif family == "vorbis":
        genres = list(tags.get("genre", []))
        artist = next(iter(tags.get("artist", []) or tags.get("albumartist", [])), None)
        source = next(iter(tags.get(SOURCE_FIELD, [])), None)
    else:
        genres = list(tags.get("©gen", []))
        artist = next(iter(tags.get("©ART", []) or tags.get("aART", [])), None)
        source = next((bytes(value).decode("utf-8", "replace") for value in tags.get(_MP4_SOURCE, [])), None)
    genres = tuple(value.strip() for value in genres if value and value.strip())
    return FileTags(path, genres, artist.strip() if artist and artist.strip() else None, source)


def _first_text(frames) -> Optional[str]:
    return next((str(text) for frame in frames for text in frame.text if str(text).strip()), None)


def _set_genre(opened, family: str, genre: str, source: str) -> None:
    """Put ``genre`` into the format's own genre field (replacing every value) and ``source`` beside it."""
    if opened.tags is None:
        opened.add_tags()
    tags = opened.tags
    if family == "id3":
        version = 3 if tags.version[:2] == (2, 3) else 4
        tags.setall("TCON", [TCON(encoding=1 if version == 3 else 3, text=[genre])])
        tags.setall(f"TXXX:{SOURCE_FIELD}", [TXXX(encoding=1 if version == 3 else 3, desc=SOURCE_FIELD, text=[source])])
        opened.save(v2_version=version)
    elif family == "vorbis":
        tags["genre"] = [genre]
        tags[SOURCE_FIELD] = [source]
        opened.save()
    else:
        tags["©gen"] = [genre]
        tags.pop("gnre", None)  # the old numeric genre, which would contradict the new one
        tags[_MP4_SOURCE] = [MP4FreeForm(source.encode("utf-8"))]
        opened.save()


# --- where the audio is: everything else in a file is tags and container headers -------------------

def _audio_span(data: bytes, path: Path) -> tuple[int, int]:
    """``(start, end)``: the bytes of ``data`` that are the audio stream, which tag writing must not change."""
    suffix = path.suffix.lower()
    if suffix == ".mp3":
        return _skip_id3v2(data, 0), _before_trailing_tags(data, len(data))
    if suffix == ".wav":
        return _riff_data(data, path)
    if suffix == ".flac":
        return _flac_frames(data, path), _before_trailing_tags(data, len(data))
    if TAG_FAMILIES[suffix] == "mp4":
        return _mp4_media(data, path)
    return _ogg_audio(data, path)[0], len(data)


def _skip_id3v2(data: bytes, start: int) -> int:
    while data[start : start + 3] == b"ID3" and len(data) >= start + 10:
        size = 0
        for byte in data[start + 6 : start + 10]:
            size = (size << 7) | (byte & 0x7F)
        start += 10 + size + (10 if data[start + 5] & 0x10 else 0)
    return start


def _before_trailing_tags(data: bytes, end: int) -> int:
    """``end`` moved before an ID3v1 tag and an APEv2 tag at the end of the file."""
    if end >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    if end >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
        size = int.from_bytes(data[end - 20 : end - 16], "little")
        flags = int.from_bytes(data[end - 12 : end - 8], "little")
        end -= size + (32 if flags & 0x80000000 else 0)
    return end


def _riff_data(data: bytes, path: Path) -> tuple[int, int]:
    position = 12
    while position + 8 <= len(data):
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if data[position : position + 4] == b"data":
            return position + 8, min(position + 8 + size, len(data))
        position += 8 + size + (size & 1)
    raise TagError(f"{path}: no 'data' chunk found; the WAV file is damaged")


def _flac_frames(data: bytes, path: Path) -> int:
    position = _skip_id3v2(data, 0)
    if data[position : position + 4] != b"fLaC":
        raise TagError(f"{path}: not a FLAC stream (no 'fLaC' marker); the file is damaged or misnamed")
    position += 4
    while position + 4 <= len(data):
        header = data[position]
        position += 4 + int.from_bytes(data[position + 1 : position + 4], "big")
        if header & 0x80:
            return position
    raise TagError(f"{path}: the FLAC metadata never ends; the file is damaged")


def _mp4_media(data: bytes, path: Path) -> tuple[int, int]:
    spans, position = [], 0
    while position + 8 <= len(data):
        size, kind, header = int.from_bytes(data[position : position + 4], "big"), data[position + 4 : position + 8], 8
        if size == 1:
            size, header = int.from_bytes(data[position + 8 : position + 16], "big"), 16
        elif size == 0:
            size = len(data) - position
        if size < header:
            raise TagError(f"{path}: a damaged MP4 atom at byte {position}")
        if kind == b"mdat":
            spans.append((position + header, min(position + size, len(data))))
        position += size
    if not spans:
        raise TagError(f"{path}: no audio ('mdat' atom) found; the MP4 file is damaged")
    return spans[0][0], spans[-1][1]


def _ogg_pages(data: bytes, start: int, path: Path) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of each Ogg page from ``start``."""
    position = start
    while position < len(data):
        if data[position : position + 4] != b"OggS" or position + 27 > len(data):
            raise TagError(f"{path}: a damaged Ogg page at byte {position}")
        segments = data[position + 26]
        length = 27 + segments + sum(data[position + 27 : position + 27 + segments])
        yield position, length
        position += length


def _ogg_audio(data: bytes, path: Path) -> tuple[int, int]:
    """``(offset, sequence number)`` of the first audio page: after 3 Vorbis or 2 Opus header packets."""
    headers, ended, serial = None, 0, None
    for offset, length in _ogg_pages(data, 0, path):
        if headers is None:
            headers = 2 if b"OpusHead" in data[offset : offset + length] else 3
            serial = data[offset + 14 : offset + 18]
        elif ended < headers and data[offset + 14 : offset + 18] != serial:
            raise TagError(f"{path}: holds several interleaved Ogg streams; tags of such files are not supported")
        if ended >= headers:
            return offset, int.from_bytes(data[offset + 18 : offset + 22], "little")
        lacing = data[offset + 27 : offset + 27 + data[offset + 26]]
        ended += sum(1 for value in lacing if value < 255)
    raise TagError(f"{path}: the Ogg stream holds no audio after its headers")


def audio_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the file's audio stream alone: equal before and after any tag change.

    Ogg pages are hashed without their sequence number and checksum, which a longer comment
    header may shift.
    """
    path = Path(path)
    _family(path)
    return _digest(path.read_bytes(), path)


def _digest(data: bytes, path: Path) -> str:
    start, end = _audio_span(data, path)
    digest = hashlib.sha256()
    if TAG_FAMILIES[path.suffix.lower()] == "vorbis" and path.suffix.lower() != ".flac":
        for offset, length in _ogg_pages(data, start, path):
            page = bytearray(data[offset : offset + length])
            page[18:26] = bytes(8)
            digest.update(page)
    else:
        digest.update(memoryview(data)[start:end])
    return digest.hexdigest()


# --- the undo journal and the safe write --------------------------------------------------------------

class TagJournal:
    """An append-only record, one JSON line per changed file, written before the file changes.

    Each line holds the file's bytes outside its audio stream (its old tags and headers, cover
    art included), its SHA-256 before and after, its modification time, and the old and new genre,
    so :func:`undo_journal` can put the file back exactly. A line is on disk (fsync) before the
    file is replaced. One run at a time may write a journal (an ``flock`` on it).

    Parameters
    ----------
    path : path-like
        The journal: created, or appended to when it is already a genre-cnn tag journal.

    Raises
    ------
    TagError
        ``path`` is a folder, another file (not a journal), cannot be written, or another run is
        writing it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise TagError(f"journal={self.path}: is a folder; name a file, e.g. tags-journal.jsonl",
                           parameter="journal")
        if self.path.is_file() and self.path.stat().st_size and not _looks_like_a_journal(self.path):
            raise TagError(f"journal={self.path}: is not a genre-cnn tag journal; name a new file",
                           parameter="journal")
        created = not self.path.exists()
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise TagError(f"journal={self.path}: cannot be written ({exc.strerror}); choose another place",
                           parameter="journal") from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise TagError(f"journal={self.path}: another tag run is writing it; wait for it or name another "
                           "journal", parameter="journal") from None
        if created:
            _sync_folder(self.path.resolve().parent)
        self.changes = 0

    def record(self, entry: dict) -> None:
        """Append one change (a JSON object) and make sure it is on disk before returning."""
        self._file.write(json.dumps(entry, ensure_ascii=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.changes += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TagJournal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _looks_like_a_journal(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            first = json.loads(handle.readline())
        return isinstance(first, dict) and "sha256_before" in first
    except (OSError, ValueError):
        return False


def write_genre(path: str | os.PathLike, genre: str, *, source: str, journal: TagJournal,
                expect: Optional[tuple[int, int]] = None) -> None:
    """Make ``genre`` the file's genre tag, and ``source`` its :data:`SOURCE_FIELD`, safely.

    The tags are written to a hidden copy beside the file (same permissions, owner and extended
    attributes); the copy's audio stream is compared with the original's, byte for byte; the
    original is rebuilt from the copy and the journal entry, to be sure the change can be undone
    exactly; the entry is journaled; and the copy is renamed over the file. Any failure leaves the
    file untouched. A symbolic link's target is tagged (the link stays a link). A file with
    several hard links is refused (the copy would split them).

    Parameters
    ----------
    path : path-like
    genre : str
    source : str
        Who decided the genre, e.g. ``"genre-cnn rock-v1@1a2b3c4d p=0.93"``.
    journal : TagJournal
    expect : (int, int), optional
        The file's ``(size, mtime_ns)`` when it was classified: a file changed since is not written.

    Raises
    ------
    TagError
        Unsupported format, read-only file or folder, several hard links, a file owned by another
        user that this process cannot give back, a file changed since ``expect``, damaged tags, a
        write that would have changed the audio, or a layout that could not be undone exactly. The
        file is unchanged then.
    """
    path = Path(path)
    family = _family(path)
    target = path.resolve()
    before = target.stat()
    if expect is not None and (before.st_size, before.st_mtime_ns) != tuple(expect):
        raise TagError(f"{path}: changed since it was classified; run tag again")
    if is_read_only(target):
        raise TagError(f"{path}: read-only; make it writable (chmod u+w) to tag it")
    if is_read_only(target.parent):
        raise TagError(f"{target.parent}: folder is read-only, so {path.name} cannot be replaced safely")
    if before.st_nlink > 1:
        raise TagError(f"{path}: has {before.st_nlink} hard links, which a tagged copy would split; "
                       "tag a copy of it, or remove the other links")
    original = target.read_bytes()
    old_genres = read_tags(target).genres
    start, end = _audio_span(original, target)
    temporary = _temporary_beside(target)
    try:
        temporary.write_bytes(original)
        _copy_attributes(before, target, temporary, path)
        _set_genre(_open(temporary), family, genre, source)
        written = temporary.read_bytes()
        if _digest(written, temporary) != _digest(original, target):
            raise TagError(f"{path}: writing the tags would change the audio stream; the file is left untouched")
        if read_tags(temporary).genres != (genre,):
            raise TagError(f"{path}: the genre did not read back after writing; the file is left untouched")
        entry = {"path": os.fsdecode(target), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "old_genres": list(old_genres), "new_genre": genre, "source": source,
                 "head": base64.b64encode(original[:start]).decode(), "tail": base64.b64encode(original[end:]).decode(),
                 "mtime_ns_before": before.st_mtime_ns,
                 "sha256_before": hashlib.sha256(original).hexdigest(),
                 "sha256_after": hashlib.sha256(written).hexdigest()}
        if family == "vorbis" and target.suffix.lower() != ".flac":
            offset, sequence = _ogg_audio(original, target)
            entry["ogg_audio"] = {"serial": int.from_bytes(original[offset + 14 : offset + 18], "little"),
                                  "sequence": sequence}
        if hashlib.sha256(_rebuild(written, target, entry)).hexdigest() != entry["sha256_before"]:
            raise TagError(f"{path}: this file's layout could not be undone exactly after tagging "
                           "(several streams, or damaged pages?); the file is left untouched")
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        now = target.stat()
        if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise TagError(f"{path}: changed while it was being tagged; run tag again")
        journal.record(entry)
        os.replace(temporary, target)
        _sync_folder(target.parent)
    except OSError as exc:
        raise TagError(f"{path}: cannot be tagged ({exc.strerror or exc}); the file is left untouched") from None
    except TagError:
        raise
    except Exception as exc:  # mutagen failing on odd tags: this file's problem, never the run's
        raise TagError(f"{path}: cannot write its tags ({_first_line(exc)}); the file is left untouched") from None
    finally:
        temporary.unlink(missing_ok=True)


def _copy_attributes(stat_result: os.stat_result, source: Path, copy: Path, shown: Path) -> None:
    """Give ``copy`` the permissions, owner and extended attributes of ``source``."""
    os.chmod(copy, stat_result.st_mode & 0o7777)
    mine = copy.stat()
    if (mine.st_uid, mine.st_gid) != (stat_result.st_uid, stat_result.st_gid):
        try:
            os.chown(copy, stat_result.st_uid, stat_result.st_gid)
        except PermissionError:
            raise TagError(f"{shown}: belongs to another user (uid {stat_result.st_uid}), and a tagged copy "
                           "would belong to you; tag it as its owner") from None
        os.chmod(copy, stat_result.st_mode & 0o7777)  # chown clears set-id bits
    for name in _xattrs(source):
        try:
            os.setxattr(copy, name, os.getxattr(source, name))
        except OSError:
            raise TagError(f"{shown}: its extended attribute {name} cannot be copied; the file is left "
                           "untouched") from None


def _xattrs(path: Path) -> list[str]:
    try:
        return os.listxattr(path)
    except (OSError, AttributeError):  # a file system without them, or a system without the call
        return []


def is_read_only(path: Path) -> bool:
    """True when this process may not write ``path``, or its owner made it read-only (even for root)."""
    return not os.access(path, os.W_OK) or not path.stat().st_mode & stat.S_IWUSR


#: The hidden copy being tagged: ``.NAME.genre-cnn-PID.EXT`` beside the file.
_COPY = re.compile(r"^\..+\.genre-cnn-(\d+)\.[^.]+$")


def _temporary_beside(path: Path) -> Path:
    """A hidden name beside ``path`` with the same ending (so its format is still known)."""
    return path.with_name(f".{path.stem}.genre-cnn-{os.getpid()}{path.suffix}")


def remove_stale_copies(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete the hidden copies that a killed ``tag --write`` or ``--undo`` left below ``folders``.

    Only copies whose process is gone are removed; the files themselves were never touched by them.

    Returns
    -------
    list of Path
        The copies removed.
    """
    removed = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for copy in folder.rglob(".*.genre-cnn-*"):
            match = _COPY.match(copy.name)
            if match and copy.is_file() and not pid_alive(int(match.group(1))):
                copy.unlink(missing_ok=True)
                removed.append(copy)
    return removed


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclasses.dataclass(frozen=True)
class UndoSummary:
    """What :func:`undo_journal` did.

    Attributes
    ----------
    restored : tuple of Path
        Files put back, byte for byte, as they were before tagging (a file tagged twice is
        restored twice, newest change first).
    unchanged : tuple of Path
        Files already as they were before (never replaced, or restored earlier).
    skipped : tuple of (Path, str)
        Files not restored, with the reason (changed since, missing, ...).
    """

    restored: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]


def undo_journal(journal: str | os.PathLike) -> UndoSummary:
    """Put every file a journal names back exactly as it was before tagging, newest change first.

    A file is restored only if it is still exactly as tagging left it; the rebuilt file's SHA-256
    must equal the journaled one before it replaces the file (through a copy and a rename), and
    its modification time is set back. The journal is read one line at a time (newest first), so
    its size does not matter.

    Raises
    ------
    TagError
        The journal is missing, unreadable, or not a genre-cnn journal.
    """
    journal = Path(journal)
    if journal.is_dir():
        raise TagError(f"{journal}: is a folder; pass the journal file that tag --write wrote")
    if not journal.is_file():
        raise TagError(f"{journal}: does not exist; pass the journal file that tag --write wrote")
    restored, unchanged, skipped, seen = [], [], [], set()
    try:
        handle = open(journal, "rb")
    except OSError as exc:
        raise TagError(f"{journal}: cannot be read ({exc.strerror})") from None
    with handle:
        offsets, position = [], 0
        for number, line in enumerate(handle, 1):
            offsets.append((number, position, line.endswith(b"\n")))
            position += len(line)
        for number, offset, complete in reversed(offsets):
            handle.seek(offset)
            line = handle.readline()
            try:
                entry = json.loads(line.decode("utf-8"))
                entry["path"], entry["sha256_before"], entry["sha256_after"]
            except (ValueError, KeyError, TypeError):
                if not complete:
                    continue  # the last line cut by a crash: its file was never replaced
                raise TagError(f"{journal}:{number}: not a genre-cnn tag journal line; nothing after it "
                               "was undone") from None
            path = Path(entry["path"])
            try:
                outcome = _restore(path, entry)
            except OSError as exc:
                outcome = f"cannot be restored ({exc.strerror or exc})"
            except TagError as exc:
                outcome = str(exc)
            if outcome == "restored":
                restored.append(path)
            elif outcome == "unchanged":
                if path not in seen:
                    unchanged.append(path)
            else:
                skipped.append((path, outcome))
            seen.add(path)
    return UndoSummary(tuple(restored), tuple(unchanged), tuple(skipped))


def _rebuild(data: bytes, path: Path, entry: dict) -> bytes:
    """The file before tagging: its journaled head and tail around the tagged file's audio stream."""
    start, end = _audio_span(data, path)
    head = base64.b64decode(entry["head"])
    rebuilt = head + data[start:end] + base64.b64decode(entry["tail"])
    if "ogg_audio" in entry:  # the audio pages were renumbered when the header grew or shrank
        buffer = io.BytesIO(rebuilt)
        buffer.seek(len(head))
        OggPage.renumber(buffer, entry["ogg_audio"]["serial"], entry["ogg_audio"]["sequence"])
        rebuilt = buffer.getvalue()
    return rebuilt


def _restore(path: Path, entry: dict) -> str:
    if not path.is_file():
        return "missing: it was moved or deleted after tagging"
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest == entry["sha256_before"]:
        return "unchanged"
    if digest != entry["sha256_after"]:
        return "changed since it was tagged (by another program or a later tag run): not restored"
    rebuilt = _rebuild(data, path, entry)
    if hashlib.sha256(rebuilt).hexdigest() != entry["sha256_before"]:
        return "could not be rebuilt exactly: not restored"
    now = path.stat()
    temporary = _temporary_beside(path)
    try:
        temporary.write_bytes(rebuilt)
        _copy_attributes(now, path, temporary, path)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        if "mtime_ns_before" in entry:
            os.utime(temporary, ns=(now.st_atime_ns, entry["mtime_ns_before"]))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return "restored"

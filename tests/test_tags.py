"""Genre tags of every supported format: read (messy values included), written safely, undone exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import mutagen
import pytest
from conftest import synth_song, write_audio
from mutagen.id3 import ID3, TCON, TPE1
from mutagen.mp4 import MP4
from mutagen.wave import WAVE

from genre_cnn.errors import TagError
from genre_cnn.library.tags import (
    SOURCE_FIELD,
    TagJournal,
    audio_digest,
    read_tags,
    supports_tags,
    undo_journal,
    write_genre,
)

SR = 16000  # a rate every format here encodes (Opus needs 8, 12, 16, 24 or 48 kHz)


def id3v1_block(*, artist: str, genre_number: int) -> bytes:
    """An ID3v1.1 tag: 'TAG', title, artist, album (30 bytes each), year, comment, track, genre byte."""
    field = lambda text, size: text.encode("latin-1")[:size].ljust(size, b"\0")  # noqa: E731
    return b"TAG" + field("Title", 30) + field(artist, 30) + field("Album", 30) + b"1999" + field("", 28) \
        + b"\0\x01" + bytes([genre_number])


def make_tagged(folder: Path, kind: str, *, genre, artist: str | None = "Some Artist", index: int = 0) -> Path:
    """One short song of ``kind`` carrying ``genre`` (a value, a list of values, or None) the way that format does."""
    suffix = {"id3v1": ".mp3", "id3v23": ".mp3", "id3v24": ".mp3", "wav-id3": ".wav", "wav": ".wav",
              "flac": ".flac", "ogg": ".ogg", "opus": ".opus", "m4a": ".m4a"}[kind]
    folder.mkdir(parents=True, exist_ok=True)
    path = write_audio(folder / f"{kind}_{index}{suffix}", synth_song("tones", index, seconds=1.0, sr=SR), SR)
    values = [] if genre is None else [genre] if isinstance(genre, str) else list(genre)
    if kind == "id3v1":
        with open(path, "ab") as handle:
            handle.write(id3v1_block(artist=artist or "", genre_number=int(values[0])))
    elif kind in ("id3v23", "id3v24"):
        tags = ID3()
        if values:
            tags.add(TCON(encoding=1 if kind == "id3v23" else 3, text=values))
        if artist:
            tags.add(TPE1(encoding=1 if kind == "id3v23" else 3, text=[artist]))
        tags.save(path, v2_version=3 if kind == "id3v23" else 4)
    elif kind == "wav-id3":
        song = WAVE(path)
        song.add_tags()
        if values:
            song.tags.add(TCON(encoding=3, text=values))
        if artist:
            song.tags.add(TPE1(encoding=3, text=[artist]))
        song.save()
    elif kind in ("flac", "ogg", "opus"):
        song = mutagen.File(path)
        if song.tags is None:
            song.add_tags()
        if values:
            song.tags["genre"] = values
        if artist:
            song.tags["artist"] = [artist]
        song.save()
    elif kind == "m4a":
        song = MP4(path)
        if song.tags is None:
            song.add_tags()
        if values:
            song.tags["©gen"] = values
        if artist:
            song.tags["©ART"] = [artist]
        song.save()
    return path


ALL_KINDS = ["id3v23", "id3v24", "wav-id3", "flac", "ogg", "opus", "m4a"]


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("value", ["Alternative Rock", "Alt. Rock", "Electro Rock", "New Age", "Hip-Hop/Rap"])
def test_the_genre_and_artist_of_every_format_read_as_written(tmp_path, kind, value):
    tags = read_tags(make_tagged(tmp_path, kind, genre=value, artist="Björk"))
    assert tags.genres == (value,)
    assert tags.artist == "Björk"
    assert tags.source is None


def test_an_mp3_with_only_an_id3v1_tag_reads_its_numeric_genre_by_name(tmp_path):
    tags = read_tags(make_tagged(tmp_path, "id3v1", genre="17", artist="Old Band"))  # 17 is Rock in ID3v1
    assert tags.genres == ("Rock",)
    assert tags.artist == "Old Band"


def test_numeric_id3v2_genres_read_by_name(tmp_path):
    assert read_tags(make_tagged(tmp_path, "id3v23", genre="(8)")).genres == ("Jazz",)


@pytest.mark.parametrize("kind", ["id3v24", "flac", "ogg", "m4a"])
def test_multi_valued_genres_keep_their_order(tmp_path, kind):
    assert read_tags(make_tagged(tmp_path, kind, genre=["Electronic", "Ambient"])).genres == ("Electronic", "Ambient")


@pytest.mark.parametrize("kind", ["wav", "flac", "id3v24"])
def test_a_file_without_tags_has_no_genre_and_no_artist(tmp_path, kind):
    path = make_tagged(tmp_path, kind, genre=None, artist=None)
    tags = read_tags(path)
    assert (tags.genres, tags.artist, tags.source) == ((), None, None)


def test_unsupported_and_damaged_files_say_what_is_wrong(tmp_path):
    aiff = tmp_path / "song.aiff"
    aiff.write_bytes(b"FORM")
    assert not supports_tags(aiff)
    with pytest.raises(TagError, match=r"song\.aiff: tags of \.aiff files are not supported"):
        read_tags(aiff)
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not audio at all" * 10)
    with pytest.raises(TagError, match=r"broken\.flac: .*flac"):
        read_tags(broken)


@pytest.mark.parametrize("kind", ALL_KINDS + ["id3v1", "wav"])
def test_writing_a_genre_changes_only_the_tags_and_undo_restores_every_byte(tmp_path, kind):
    path = make_tagged(tmp_path, kind, genre="17" if kind == "id3v1" else None if kind == "wav" else "World")
    original = path.read_bytes()
    audio = audio_digest(path)
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        write_genre(path, "electronic", source="genre-cnn m@1234abcd p=0.91", journal=journal)
        # a much longer value forces the formats to grow their tag blocks (Ogg pages are renumbered)
        write_genre(path, "electronic " + "x" * 5000, source="genre-cnn m@1234abcd p=0.91", journal=journal)
    tags = read_tags(path)
    assert tags.genres == ("electronic " + "x" * 5000,)
    assert tags.source == "genre-cnn m@1234abcd p=0.91"
    assert audio_digest(path) == audio
    assert path.read_bytes() != original
    summary = undo_journal(tmp_path / "journal.jsonl")
    assert summary.skipped == ()
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no copy left behind


def test_the_source_field_is_the_formats_own(tmp_path):
    mp3, flac, m4a, ogg, wav = (make_tagged(tmp_path, kind, genre=None) for kind in ("id3v24", "flac", "m4a", "ogg", "wav"))
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        for path in (mp3, flac, m4a, ogg, wav):
            write_genre(path, "rock", source="genre-cnn m@1 p=0.80", journal=journal)
    assert ID3(mp3).getall(f"TXXX:{SOURCE_FIELD}")[0].text == ["genre-cnn m@1 p=0.80"]
    assert ID3(mp3).getall("TCON")[0].text == ["rock"]
    assert mutagen.File(flac).tags[SOURCE_FIELD] == ["genre-cnn m@1 p=0.80"]
    assert MP4(m4a).tags["©gen"] == ["rock"]
    assert bytes(MP4(m4a).tags[f"----:com.apple.iTunes:{SOURCE_FIELD}"][0]) == b"genre-cnn m@1 p=0.80"
    assert mutagen.File(ogg).tags["genre"] == ["rock"] and mutagen.File(ogg).tags[SOURCE_FIELD] == ["genre-cnn m@1 p=0.80"]
    assert WAVE(wav).tags.getall("TCON")[0].text == ["rock"]
    assert WAVE(wav).tags.getall(f"TXXX:{SOURCE_FIELD}")[0].text == ["genre-cnn m@1 p=0.80"]


def test_an_id3v23_file_stays_id3v23(tmp_path):
    path = make_tagged(tmp_path, "id3v23", genre="Hard Rock")
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        write_genre(path, "rock", source="genre-cnn m@1 p=0.80", journal=journal)
    assert ID3(path).version == (2, 3, 0)


def test_read_only_and_changed_files_are_refused_and_left_untouched(tmp_path):
    path = make_tagged(tmp_path, "flac", genre=None)
    before = path.read_bytes()
    stat = path.stat()
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        os.chmod(path, 0o444)  # read-only for its owner: refused even when running as root
        with pytest.raises(TagError, match=r"flac_0\.flac: read-only; make it writable"):
            write_genre(path, "rock", source="s", journal=journal)
        os.chmod(path, 0o644)
        os.chmod(tmp_path, 0o555)
        try:
            with pytest.raises(TagError, match="folder is read-only"):
                write_genre(path, "rock", source="s", journal=journal)
        finally:
            os.chmod(tmp_path, 0o755)
        with pytest.raises(TagError, match="changed since it was classified"):
            write_genre(path, "rock", source="s", journal=journal, expect=(stat.st_size + 1, stat.st_mtime_ns))
        assert journal.changes == 0
    assert path.read_bytes() == before


def test_undo_leaves_files_changed_after_tagging_alone(tmp_path):
    path = make_tagged(tmp_path, "ogg", genre=None)
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        write_genre(path, "rock", source="s", journal=journal)
    song = mutagen.File(path)
    song.tags["genre"] = ["the user's own genre"]
    song.save()
    summary = undo_journal(tmp_path / "journal.jsonl")
    assert summary.restored == ()
    assert "changed since it was tagged" in summary.skipped[0][1]
    assert read_tags(path).genres == ("the user's own genre",)


def test_a_journal_line_cut_by_a_crash_is_ignored_and_a_foreign_file_is_refused(tmp_path):
    path = make_tagged(tmp_path, "id3v24", genre=None)
    original = path.read_bytes()
    journal_path = tmp_path / "journal.jsonl"
    with TagJournal(journal_path) as journal:
        write_genre(path, "rock", source="s", journal=journal)
    with open(journal_path, "a") as handle:
        handle.write('{"path": "/some/where.mp3", "sha')  # kill -9 in the middle of a line
    assert undo_journal(journal_path).restored == (path.resolve(),)
    assert path.read_bytes() == original
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text("hello\n")
    with pytest.raises(TagError, match=r"notes\.jsonl:1: not a genre-cnn tag journal line"):
        undo_journal(foreign)
    with pytest.raises(TagError, match="does not exist"):
        undo_journal(tmp_path / "missing.jsonl")


def test_undoing_twice_changes_nothing_the_second_time(tmp_path):
    path = make_tagged(tmp_path, "m4a", genre="Electronic")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        write_genre(path, "pop", source="s", journal=journal)
    undo_journal(tmp_path / "journal.jsonl")
    again = undo_journal(tmp_path / "journal.jsonl")
    assert (again.restored, again.unchanged) == ((), (path.resolve(),))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_linked_song_is_tagged_through_its_link_and_undo_restores_the_target(tmp_path):
    target = make_tagged(tmp_path / "store", "flac", genre=None)
    link = tmp_path / "library" / "song.flac"
    link.parent.mkdir()
    link.symlink_to(target)
    original = target.read_bytes()
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        write_genre(link, "rock", source="s", journal=journal)
    assert link.is_symlink() and read_tags(link).genres == ("rock",)
    assert undo_journal(tmp_path / "journal.jsonl").restored == (target.resolve(),)
    assert link.is_symlink() and target.read_bytes() == original


def test_owner_permissions_and_modification_time_survive_write_and_undo(tmp_path):
    path = make_tagged(tmp_path, "id3v24", genre="Jazz")
    os.chmod(path, 0o640)
    owner = (1234, 5678) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, *owner)
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        write_genre(path, "rock", source="s", journal=journal)
    assert (path.stat().st_uid, path.stat().st_gid, path.stat().st_mode & 0o777) == (*owner, 0o640)
    undo_journal(tmp_path / "journal.jsonl")
    after = path.stat()
    assert (after.st_uid, after.st_gid, after.st_mode & 0o777) == (*owner, 0o640)
    assert after.st_mtime_ns == 1_600_000_000_000_000_000


def test_a_hard_linked_file_is_refused_and_untouched(tmp_path):
    path = make_tagged(tmp_path, "ogg", genre=None)
    os.link(path, tmp_path / "other-name.ogg")
    before = path.read_bytes()
    with TagJournal(tmp_path / "journal.jsonl") as journal, pytest.raises(TagError, match="has 2 hard links"):
        write_genre(path, "rock", source="s", journal=journal)
    assert path.read_bytes() == before


def test_a_file_whose_change_could_not_be_undone_exactly_is_never_written(tmp_path):
    path = make_tagged(tmp_path, "ogg", genre=None)
    path.write_bytes(path.read_bytes() * 2)  # the same Ogg stream twice in a row: one serial, pages repeated
    before = path.read_bytes()
    with TagJournal(tmp_path / "journal.jsonl") as journal:
        with pytest.raises(TagError, match="could not be undone exactly"):
            write_genre(path, "rock", source="s", journal=journal)
        assert journal.changes == 0
    assert path.read_bytes() == before


def test_copies_left_by_a_killed_run_are_removed_and_a_live_runs_are_kept(tmp_path):
    from genre_cnn.library.tags import remove_stale_copies

    dead = tmp_path / "a" / ".song.genre-cnn-999999999.mp3"
    live = tmp_path / ".other.genre-cnn-{}.flac".format(os.getpid())
    dead.parent.mkdir()
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    assert remove_stale_copies([tmp_path]) == [dead]
    assert live.exists() and not dead.exists()


def test_a_journal_must_be_a_journal_and_only_one_run_writes_it(tmp_path):
    song = tmp_path / "song.mp3"
    song.write_bytes(b"ID3 not a journal")
    with pytest.raises(TagError, match="is not a genre-cnn tag journal; name a new file"):
        TagJournal(song)
    with TagJournal(tmp_path / "j.jsonl"):
        with pytest.raises(TagError, match="another tag run is writing it"):
            TagJournal(tmp_path / "j.jsonl")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(TagError, match=r"binary\.jsonl:1: not a genre-cnn tag journal line"):
        undo_journal(binary)
    with pytest.raises(TagError, match="is a folder; pass the journal file"):
        undo_journal(tmp_path)

"""Genre tags as found in real music libraries, turned into one genre name per song."""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
import types
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from genre_cnn.errors import DatasetError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

__all__ = ["GenreMap", "GenreTally", "normalise_tag", "tally_genres"]

_N_AND = re.compile(r"['‘’`]n['‘’`]|(?<![^\W_])n['‘’`](?![^\W_])|(?<![^\W_])['‘’`]n(?![^\W_])")
_NOT_WORD = re.compile(r"[\W_]+")
_SEPARATORS = re.compile(r"[;/|,\x00]")
_ONLY_NUMBERS = re.compile(r"[\d ]+")  # "(17)" normalises to "17": an unresolved ID3v1 number, not a genre


def normalise_tag(value: str) -> str:
    """The canonical key of a genre tag value: ``"Alt. Rock"`` -> ``"alt rock"``.

    Unicode NFKC and case folding; ``&``, ``+``, ``'n'``, ``n'`` and ``'n`` become " and "
    (``"Drum'n'Bass"`` -> ``"drum and bass"``, ``"R&B"`` -> ``"r and b"``); every run of characters that
    are not letters or digits becomes one space; the ends are trimmed. Empty or only punctuation -> ``""``.
    """
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    text = _N_AND.sub(" and ", text.replace("&", " and ").replace("+", " and "))
    return _NOT_WORD.sub(" ", text).strip()


@dataclasses.dataclass(frozen=True)
class GenreMap:
    """Which genre a tag value names.

    Parameters
    ----------
    exact : mapping of str to str or None
        Tag value -> genre name; ``None`` ignores the value (``"other"``, ``"unknown"``). Keys are
        normalised with :func:`normalise_tag` on construction.
    patterns : tuple of (re.Pattern or str, str or None)
        Tried in order with ``re.search`` on the normalised value (lower case, single spaces) when
        ``exact`` has no entry for it.
    keep_unmapped : bool
        A value neither in ``exact`` nor matched is its own genre, in display form
        (``"Sea Shanty"`` -> ``"sea-shanty"``); otherwise it gives no genre. A value made only of digits
        and parentheses (an ID3v1 number such as ``"(17)"`` that the tag reader did not resolve) is never
        kept as a genre.
    """

    exact: Mapping[str, str | None]
    patterns: tuple[tuple[re.Pattern, str | None], ...] = ()
    keep_unmapped: bool = True

    def __post_init__(self) -> None:
        exact = {normalise_tag(tag): genre for tag, genre in self.exact.items()}
        patterns = tuple((re.compile(p) if isinstance(p, str) else p, genre) for p, genre in self.patterns)
        object.__setattr__(self, "exact", types.MappingProxyType(exact))
        object.__setattr__(self, "patterns", patterns)

    @classmethod
    def builtin(cls) -> GenreMap:
        """The built-in map: some 25 parent genres (rock, pop, electronic, hip-hop, r&b, ...) and their spellings."""
        return _builtin()

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, base: GenreMap | None = None) -> GenreMap:
        """Read a user's genre map from a ``.csv`` or ``.toml`` file.

        CSV (UTF-8, ``#`` comment lines): header ``tag,genre`` and an optional ``match`` column holding
        ``exact`` (default) or ``regex``. TOML: an ``[exact]`` table (``"Alt. Rock" = "rock"``), a
        ``[patterns]`` table (``'\\bcore$' = "metal"``) and an optional top-level ``keep_unmapped = false``.
        An empty genre ignores the value. Regular expressions see the normalised value.

        Parameters
        ----------
        path : path-like
        base : GenreMap, optional
            A map the file extends (usually :meth:`builtin`): the file's rules are tried before the base's,
            so the user wins. ``None``: the file's rules alone.

        Raises
        ------
        DatasetError
            The file is missing, not UTF-8, not ``.csv``/``.toml``, has a syntax error, lacks a column, or
            has a bad regex, an unknown ``match`` value, a genre name with "/" or a leading "." or a tag
            mapped twice. The message names the file, the line or key, and the fix.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".toml"):
            raise _error(path, f"unknown kind of file {suffix or '(no suffix)'!r}; write the map as .csv or .toml")
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise _error(path, f"{what}; pass a .csv or .toml genre map file")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise _error(path, f"line {line}: not UTF-8 text; save the file as UTF-8") from None
        exact, patterns, keep = (_read_csv if suffix == ".csv" else _read_toml)(path, text)
        if base is None:
            return cls(exact, tuple(patterns), True if keep is None else keep)
        # The file's exact entries, then its patterns, then the base's: a base entry the file's patterns
        # would catch is dropped, so the flat exact-then-patterns lookup keeps that order.
        merged = {key: genre for key, genre in base.exact.items()
                  if not any(pattern.search(key) for pattern, _ in patterns)}
        merged.update(exact)
        return cls(merged, tuple(patterns) + base.patterns, base.keep_unmapped if keep is None else keep)

    def genre_of(self, value: str) -> str | None:
        """The genre one tag value names, or ``None`` (empty, ignored, a bare number, unmapped when not kept).

        The value is used whole; for tag values that may list several genres (``"Rock/Pop"``) use
        :meth:`first_genre`.
        """
        key = normalise_tag(value)
        if not key:
            return None
        found, genre = self._lookup(key)
        return genre if found else self._kept(key)

    def first_genre(self, values: Sequence[str]) -> tuple[str | None, str | None]:
        """The genre of a song from its genre tag values, and the raw value (or piece) that gave it.

        Values are tried in order. A value found whole in ``exact`` is used as it is (an ignored one is
        skipped); otherwise it is split on ``;``, ``/``, ``|``, ``,`` and NUL and its pieces are looked up
        (exact, then patterns) in order, so ``"R&B/Soul"`` gives ``("r&b", "R&B")``. A value or piece the
        map knows beats one kept as its own genre: ``["Sea Shanty", "Folk"]`` gives folk; only when none
        is known does the first unmapped piece become the genre (``keep_unmapped``). A single string
        counts as one value. Returns ``(None, None)`` when no value gives a genre.
        """
        values = [values] if isinstance(values, str) else values
        fallback: tuple[str | None, str | None] = (None, None)
        for value in values:
            whole = normalise_tag(value)
            if whole in self.exact:
                if self.exact[whole] is not None:
                    return self.exact[whole], value
                continue
            for piece in (part.strip() for part in _SEPARATORS.split(value)):
                key = normalise_tag(piece)
                if not key:
                    continue
                found, genre = self._lookup(key)
                if found and genre is not None:
                    return genre, piece
                if not found and fallback[0] is None and self._kept(key) is not None:
                    fallback = (self._kept(key), piece)
        return fallback

    def _lookup(self, key: str) -> tuple[bool, str | None]:
        if key in self.exact:
            return True, self.exact[key]
        for pattern, genre in self.patterns:
            if pattern.search(key):
                return True, genre
        return False, None

    def _kept(self, key: str) -> str | None:
        return key.replace(" ", "-") if self.keep_unmapped and not _ONLY_NUMBERS.fullmatch(key) else None


@dataclasses.dataclass(frozen=True)
class GenreTally:
    """How the songs' genre tags became genres, for the report table.

    Attributes
    ----------
    kept : mapping of str to int
        Genre -> songs, for genres with at least ``min_songs`` songs; most songs first.
    left_out : mapping of str to int
        Genre -> songs, for genres with fewer.
    merged : mapping of str to mapping of str to int
        Genre -> {raw tag value -> songs} for raw values spelled differently from the genre name
        (``"rock": {"Alt. Rock": 3}``), for kept and left-out genres alike.
    ignored : mapping of str to int
        Raw value -> songs, over the songs that have tag values yet no genre (all ignored or bare numbers).
    untagged : int
        Songs with no genre tag at all (or only empty ones).
    """

    kept: Mapping[str, int]
    left_out: Mapping[str, int]
    merged: Mapping[str, Mapping[str, int]]
    ignored: Mapping[str, int]
    untagged: int


def tally_genres(tag_values: Sequence[Sequence[str]], genre_map: GenreMap, *,
                 min_songs: int = 1) -> tuple[list[str | None], GenreTally]:
    """The genre of every song, and the tally of how tags became genres.

    Parameters
    ----------
    tag_values : sequence of sequence of str [shape=(n_songs, n_values)]
        Each song's raw genre tag values; an empty sequence for an untagged song.
    genre_map : GenreMap
    min_songs : int
        A genre with fewer songs is left out: its songs get no genre.

    Returns
    -------
    genres : list of (str or None) [shape=(n_songs,)]
        ``None`` for untagged, ignored and left-out songs.
    tally : GenreTally
    """
    if isinstance(min_songs, bool) or not isinstance(min_songs, int) or min_songs < 1:
        raise DatasetError(f"min_songs={min_songs!r} must be a whole number >= 1; pass 1 to keep every genre",
                           parameter="min_songs")
    firsts: list[str | None] = []
    merged: dict[str, Counter] = defaultdict(Counter)
    ignored: Counter = Counter()
    untagged = 0
    for values in tag_values:
        values = [value for value in ([values] if isinstance(values, str) else values) if value.strip()]
        genre, raw = genre_map.first_genre(values)
        firsts.append(genre)
        if not values:
            untagged += 1
        elif genre is None:
            ignored.update(dict.fromkeys(values, 1))
        elif normalise_tag(raw) != normalise_tag(genre):
            merged[genre][raw] += 1
    counts = Counter(genre for genre in firsts if genre is not None).most_common()
    kept = {genre: n for genre, n in counts if n >= min_songs}
    tally = GenreTally(kept=kept, left_out={genre: n for genre, n in counts if n < min_songs},
                       merged={genre: dict(merged[genre].most_common()) for genre, _ in counts if genre in merged},
                       ignored=dict(ignored.most_common()), untagged=untagged)
    return [genre if genre in kept else None for genre in firsts], tally


def _error(path: Path, message: str) -> DatasetError:
    return DatasetError(f"{path}: {message}", parameter="genre_map")


def _genre(path: Path, where: str, name: str) -> str | None:
    """A genre cell: "" -> None (ignore); a name that cannot be a folder name is refused."""
    name = name.strip()
    if name and ("/" in name or "\\" in name or name.startswith(".")):
        hint = normalise_tag(name).replace(" ", "-") or "rock"
        raise _error(path, f"{where}: genre name {name!r} becomes a folder name, so it cannot contain '/' or "
                           f"'\\' or start with '.'; rename it, e.g. {hint!r}")
    return name or None


def _add(path: Path, where: str, rules: dict, tag: str, genre: str | None, *, regex: bool) -> None:
    """Check one rule and add it: exact rules under their normalised tag, regex rules compiled."""
    if regex:
        try:
            pattern = re.compile(tag)
        except re.error as exc:
            raise _error(path, f"{where}: bad regular expression {tag!r} ({exc}); fix it or match it "
                               "exactly") from None
        rules["patterns"].append((pattern, genre))
        return
    key = normalise_tag(tag)
    if not key:
        raise _error(path, f"{where}: tag {tag!r} has no letters or digits, so it never matches; remove it")
    earlier = rules["exact"].get(key)
    if earlier is not None and earlier[0] != genre:
        raise _error(path, f"{where}: tag {tag!r} is already mapped to {earlier[0]!r} at {earlier[1]}; "
                           "keep one of the two")
    rules["exact"][key] = (genre, where)


def _read_csv(path: Path, text: str):
    rules: dict = {"exact": {}, "patterns": []}
    header = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cells = [cell.strip() for cell in next(csv.reader([line]))]
        except csv.Error as exc:
            raise _error(path, f"line {number}: not valid CSV ({exc}); fix the quoting") from None
        if header is None:
            header = [cell.lower() for cell in cells]
            unknown = [column for column in header if column not in ("tag", "genre", "match")]
            if "tag" not in header or "genre" not in header or unknown:
                raise _error(path, f"line {number}: header {','.join(cells)!r} must name the columns tag,genre "
                                   "and optionally match; start the file with the line tag,genre")
            continue
        row = dict(zip(header, cells + [""] * len(header)))
        where = f"line {number}"
        if not row["tag"]:
            raise _error(path, f"{where}: empty tag; give the tag value to map, or delete the line")
        match = row.get("match", "").lower() or "exact"
        if match not in ("exact", "regex"):
            raise _error(path, f"{where}: match {row['match']!r} is unknown; write exact or regex")
        _add(path, where, rules, row["tag"], _genre(path, where, row["genre"]), regex=match == "regex")
    if header is None:
        raise _error(path, "no header row; start the file with the line tag,genre")
    return {key: genre for key, (genre, _) in rules["exact"].items()}, rules["patterns"], None


def _read_toml(path: Path, text: str):
    if tomllib is None:
        raise _error(path, "reading TOML needs Python 3.11 or `pip install tomli`; or write the map as .csv")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(path, f"not valid TOML ({exc}); fix the syntax there") from None
    unknown = sorted(set(document) - {"exact", "patterns", "keep_unmapped"})
    if unknown:
        raise _error(path, f"unknown key {unknown[0]!r}; use the tables [exact] and [patterns] and keep_unmapped")
    keep = document.get("keep_unmapped")
    if keep is not None and not isinstance(keep, bool):
        raise _error(path, f"keep_unmapped = {keep!r}; write keep_unmapped = true or false")
    rules: dict = {"exact": {}, "patterns": []}
    for table in ("exact", "patterns"):
        entries = document.get(table, {})
        if not isinstance(entries, dict):
            raise _error(path, f"{table} must be a table; write [{table}] and then \"tag\" = \"genre\" lines")
        for tag, genre in entries.items():
            where = f"[{table}] {tag!r}"
            if not isinstance(genre, str):
                raise _error(path, f"{where} = {genre!r}; the genre must be a string (\"\" to ignore the tag)")
            _add(path, where, rules, tag, _genre(path, where, genre), regex=table == "patterns")
    return {key: genre for key, (genre, _) in rules["exact"].items()}, rules["patterns"], keep


# === The built-in map ===
# Spellings as found in tags (normalised on load). Judgement calls: punk, soul, funk, disco and r&b are genres
# of their own; "pop rock", "dance pop" -> pop; "country rock" -> country; "folk rock" -> folk; emo and
# post-hardcore -> punk; "indie" and "alternative" -> rock; trip-hop -> electronic; ambiguous words
# ("romantic", "hardcore", "instrumental", "garage") are left out.
_PARENTS = {
    "rock": ("Rock", "Alternative", "Alternative & Punk", "Alternative Rock", "Alt Rock", "Alt. Rock", "AlternRock",
             "Alt", "Indie", "Indie Rock", "Hard Rock", "Classic Rock", "Soft Rock", "Prog", "Prog Rock",
             "Progressive Rock", "Psychedelic", "Psychadelic", "Psychedelic Rock", "Garage Rock", "Grunge",
             "Post-Grunge", "Rock & Roll", "Rock 'n' Roll", "Rock n Roll", "Rockabilly", "Electro Rock", "Post-Rock",
             "Krautrock", "Shoegaze", "New Wave", "Britpop", "Gothic", "Gothic Rock"),
    "pop": ("Pop", "Indie Pop", "Synthpop", "Synth-Pop", "Dance Pop", "K-Pop", "J-Pop", "Pop Rock", "Electropop",
            "Teen Pop", "Europop", "Adult Contemporary", "Top 40", "Schlager"),
    "electronic": ("Electronic", "Electronica", "Electro", "Techno", "House", "Deep House", "Trance", "Psytrance",
                   "EDM", "Dubstep", "Drum & Bass", "Drum'n'Bass", "DnB", "D&B", "Jungle", "IDM", "Breakbeat", "Breaks",
                   "Big Beat", "Downtempo", "Trip-Hop", "Glitch Hop", "Chillout", "Chill-Out", "Dance", "Dance & DJ",
                   "Eurodance", "UK Garage", "2-Step", "Hardstyle", "Gabber", "Rave", "Acid", "Industrial", "EBM",
                   "Synthwave", "Darkwave", "Chiptune", "Glitch", "Electroclash", "Future Bass"),
    "hip-hop": ("Hip-Hop", "HipHop", "Rap", "Trap", "Gangsta Rap", "Gangsta", "G-Funk", "Boom Bap", "Grime", "Drill",
                "Crunk", "Jazz Hop", "Dirty South"),
    "r&b": ("R&B", "RnB", "R'n'B", "Rhythm and Blues", "Contemporary R&B", "New Jack Swing", "Slow Jam", "Quiet Storm"),
    "soul": ("Soul", "Neo-Soul", "Motown", "Northern Soul", "Rhythmic Soul"),
    "funk": ("Funk", "P-Funk"),
    "disco": ("Disco", "Nu-Disco", "Italo Disco", "Eurodisco"),
    "jazz": ("Jazz", "Bebop", "Bebob", "Bop", "Hard Bop", "Post-Bop", "Swing", "Big Band", "Smooth Jazz", "Acid Jazz",
             "Jazz Fusion", "Fusion", "Dixieland", "Ragtime"),
    "classical": ("Classical", "Baroque", "Opera", "Orchestral", "Chamber Music", "Symphony", "Sonata",
                  "Contemporary Classical", "Modern Classical", "Neoclassical", "Choral", "Early Music", "Renaissance"),
    "blues": ("Blues",),
    "country": ("Country", "Bluegrass", "Country Rock", "Country Pop", "Americana", "Alt-Country", "Country & Western",
                "C&W", "Western", "Western Swing", "Honky Tonk"),
    "reggae": ("Reggae", "Ska", "Dub", "Dancehall", "Dance Hall", "Roots Reggae", "Rocksteady", "Lovers Rock", "Ragga",
               "Two Tone"),
    "metal": ("Metal", "Heavy Metal", "Death Metal", "Black Metal", "Thrash Metal", "Thrash", "Nu Metal", "Metalcore",
              "Deathcore", "Grindcore", "Djent"),
    "folk": ("Folk", "Folk Rock", "Folk Pop", "Singer-Songwriter", "Acoustic", "Folklore"),
    "punk": ("Punk", "Punk Rock", "Hardcore Punk", "Pop Punk", "Post-Punk", "Emo", "Post-Hardcore"),
    "latin": ("Latin", "Latino", "Pop Latino", "Salsa", "Reggaeton", "Reggaetón", "Bossa Nova", "Tango", "Cumbia",
              "Bachata", "Merengue", "Samba", "Mambo", "Bolero", "MPB"),
    "world": ("World", "World Music", "Worldbeat", "Afrobeat", "Afrobeats", "Celtic", "Flamenco", "Fado", "Klezmer",
              "Highlife", "Bhangra", "Ethnic", "Tribal", "Native American", "Polka", "Indian Classical"),
    "soundtrack": ("Soundtrack", "Score", "Film Score", "OST", "Video Game", "Video Game Music", "Game", "VGM",
                   "Musical", "Show Tunes", "Showtunes", "Stage & Screen", "Trailer"),
    "ambient": ("Ambient", "Dark Ambient", "Drone"),
    "new-age": ("New Age", "Newage", "Meditation", "Meditative", "Relaxation"),
    "gospel": ("Gospel", "Christian", "Contemporary Christian", "CCM", "Worship", "Praise & Worship",
               "Christian & Gospel", "Spirituals"),
    "easy-listening": ("Easy Listening", "Lounge", "Exotica", "Space Age Pop"),
    "children": ("Children's", "Children's Music", "Children", "Kids", "Kids' Music", "Lullaby", "Lullabies"),
    "comedy": ("Comedy", "Stand-Up", "Stand-Up Comedy", "Humour", "Humor", "Satire", "Parody"),
    "spoken-word": ("Spoken Word", "Spoken", "Audiobook", "Audiobooks", "Audio Book", "Podcast", "Poetry", "Speech",
                    "Books & Spoken"),
}
_IGNORED = ("other", "unknown", "genre", "misc", "misc.", "miscellaneous", "various", "various genres", "none",
            "n/a", "default", "music", "unknown genre", "<unknown>", "no genre", "undefined", "unclassified")
# Families by their head word, tried in this order after the exact table.
_FAMILIES = (
    (r"\bmetal\b", "metal"), (r"\bjazz\b", "jazz"), (r"\bpunk\b", "punk"),
    (r"\b(hip hop|hiphop|rap)\b|\bhop$", "hip-hop"), (r"\br and b\b|\brnb\b", "r&b"), (r"\blatin[oa]?\b", "latin"),
    (r"\b(soundtracks?|score|ost)$", "soundtrack"),
    (r"\b(house|techno|trance|electronica?|electro|edm|dubstep|breaks|breakbeat|drum and bass|dance)$",
     "electronic"),
    (r"\brock\b", "rock"), (r"pop$", "pop"), (r"\bblues$", "blues"), (r"\bcountry$", "country"),
    (r"\bfolk\b", "folk"), (r"\bsoul$", "soul"), (r"\bfunk$", "funk"), (r"disco$", "disco"),
    (r"\breggae\b", "reggae"), (r"\bclassical\b", "classical"), (r"\bambient$", "ambient"),
    (r"\bgospel\b", "gospel"), (r"^world\b", "world"),
)


@functools.lru_cache(maxsize=1)
def _builtin() -> GenreMap:
    exact: dict[str, str | None] = dict.fromkeys(map(normalise_tag, _IGNORED))
    for genre, spellings in _PARENTS.items():
        for spelling in spellings:
            key = normalise_tag(spelling)
            if exact.get(key, genre) != genre:
                raise AssertionError(f"built-in genre map: {spelling!r} is under {exact[key]!r} and {genre!r}")
            exact[key] = genre
    return GenreMap(exact, tuple((re.compile(pattern), genre) for pattern, genre in _FAMILIES))

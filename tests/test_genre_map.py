"""Genre tags from real libraries become one genre per song: spellings, multi-valued tags, user maps, the tally."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genre_cnn.errors import DatasetError
from genre_cnn.library import genres
from genre_cnn.library.genres import GenreMap, GenreTally, normalise_tag, tally_genres

BUILTIN = GenreMap.builtin()


# === normalise_tag ===

@pytest.mark.parametrize("value, key", [
    ("Alt. Rock", "alt rock"), ("Hip-Hop", "hip hop"), ("R&B", "r and b"), ("Drum & Bass", "drum and bass"),
    ("Drum'n'Bass", "drum and bass"), ("Rock 'n' Roll", "rock and roll"), ("Rock n' Roll", "rock and roll"),
    ("Rock’n’Roll", "rock and roll"), ("Jazz+Funk", "jazz and funk"), ("  Deep_House  ", "deep house"),
    ("ＨＯＵＳＥ", "house"), ("Straße", "strasse"), ("Don't Stop", "don t stop"),
    ("", ""), ("  ", ""), ("?!/.", ""),
], ids=repr)
def test_normalise_tag_gives_one_canonical_key(value, key):
    assert normalise_tag(value) == key


@given(st.text())
def test_normalising_twice_changes_nothing(value):
    once = normalise_tag(value)
    assert normalise_tag(once) == once
    assert once == once.strip() and "  " not in once


# === The built-in map ===

@pytest.mark.parametrize("value", ["Rock", "Alternative Rock", "Alternative", "Alt. Rock", "Alt Rock", "ALT-ROCK",
                                   "Indie Rock", "Hard Rock", "Classic Rock", "Electro Rock", "Post-Rock",
                                   "Rock 'n' Roll", "Rock & Roll", "Grunge", "Surf Rock"])
def test_alt_rock_spellings_all_become_rock(value):
    assert BUILTIN.genre_of(value) == "rock"


@pytest.mark.parametrize("value, genre", [
    ("Electronic", "electronic"), ("Classical", "classical"), ("World", "world"), ("Ambient", "ambient"),
    ("New Age", "new-age"), ("Drum'n'Bass", "electronic"), ("DnB", "electronic"), ("Trip-Hop", "electronic"),
    ("Synth-Pop", "pop"), ("K-Pop", "pop"), ("Pop Rock", "pop"), ("Dance Pop", "pop"), ("Dance", "electronic"),
    ("Contemporary R&B", "r&b"), ("RnB", "r&b"), ("Rhythm & Blues", "r&b"), ("Neo-Soul", "soul"),
    ("Pop Punk", "punk"), ("Punk Rock", "punk"), ("Country Rock", "country"), ("Folk Rock", "folk"),
    ("Lovers Rock", "reggae"), ("Film Score", "soundtrack"), ("Video Game", "soundtrack"),
    ("Bossa Nova", "latin"), ("Nu-Disco", "disco"), ("Singer-Songwriter", "folk"), ("Children's Music", "children"),
], ids=repr)
def test_common_tags_map_to_their_parent_genre(value, genre):
    assert BUILTIN.genre_of(value) == genre


@pytest.mark.parametrize("value", ["Hip-Hop", "Hip Hop", "HipHop", "hip hop", "Rap", "Trap", "Gangsta Rap",
                                   "Underground Hip-Hop", "Conscious Rap"])
def test_hip_hop_spellings_all_become_hip_hop(value):
    assert BUILTIN.genre_of(value) == "hip-hop"


@pytest.mark.parametrize("value, genre", [
    ("Melodic Death Metal", "metal"), ("Symphonic Metal", "metal"), ("Folk Metal", "metal"),
    ("Latin Jazz", "jazz"), ("Jazz Rock", "jazz"), ("Skate Punk", "punk"), ("Acid House", "electronic"),
    ("Goa Trance", "electronic"), ("Dream Pop", "pop"), ("Delta Blues", "blues"), ("Alt Country", "country"),
    ("Indie Folk", "folk"), ("Northern Soul", "soul"), ("Original Motion Picture Soundtrack", "soundtrack"),
    ("Southern Gospel", "gospel"), ("Stoner Rock", "rock"),
], ids=repr)
def test_families_are_caught_by_their_head_word(value, genre):
    assert BUILTIN.genre_of(value) == genre


@pytest.mark.parametrize("value", ["", "   ", "Other", "unknown", "Genre", "Misc", "Various", "None", "N/A",
                                   "default", "Music", "<Unknown>"])
def test_placeholder_values_give_no_genre(value):
    assert BUILTIN.genre_of(value) is None


def test_an_unmapped_value_is_its_own_genre_in_display_form():
    assert BUILTIN.genre_of("Sea Shanty") == "sea-shanty"
    assert GenreMap({}, keep_unmapped=False).genre_of("Sea Shanty") is None


@pytest.mark.parametrize("value", ["17", "(17)", "(17)(24)", " 40 "])
def test_a_bare_id3_number_is_not_a_genre(value):
    assert BUILTIN.genre_of(value) is None
    assert BUILTIN.first_genre([value, "Jazz"]) == ("jazz", "Jazz")


def test_a_number_inside_a_name_is_kept():
    assert BUILTIN.genre_of("8-bit") == "8-bit"


def test_constructor_normalises_keys_and_compiles_string_patterns():
    custom = GenreMap({"Alt. Rock": "rock"}, ((r"\bshanty$", "folk"),), keep_unmapped=False)
    assert custom.genre_of("ALT ROCK") == "rock" and custom.genre_of("Sea Shanty") == "folk"
    assert isinstance(custom.patterns[0][0], re.Pattern)


# === Several genres in one tag ===

@pytest.mark.parametrize("values, expected", [
    (["Rock/Pop"], ("rock", "Rock")),
    (["R&B/Soul"], ("r&b", "R&B")),
    (["Soul; R&B"], ("soul", "Soul")),
    (["Hip-Hop/Rap"], ("hip-hop", "Hip-Hop")),
    (["Other", "Jazz"], ("jazz", "Jazz")),
    (["Other/Rock"], ("rock", "Rock")),
    (["Electronic\x00Ambient"], ("electronic", "Electronic")),
    (["Blues | Rock", "Jazz"], ("blues", "Blues")),
    (["Pop/Rock"], ("pop", "Pop/Rock")),  # "pop rock" is in the exact table: the whole value is used
    (["N/A", "Blues"], ("blues", "Blues")),
], ids=repr)
def test_multi_valued_tags_take_the_first_value_that_maps(values, expected):
    assert BUILTIN.first_genre(values) == expected


def test_a_value_the_map_knows_beats_one_kept_as_its_own_genre():
    assert BUILTIN.first_genre(["Sea Shanty", "Folk"]) == ("folk", "Folk")
    assert BUILTIN.first_genre(["Sea Shanty/Polska", "Other"]) == ("sea-shanty", "Sea Shanty")


def test_no_usable_value_gives_no_genre():
    assert BUILTIN.first_genre([]) == (None, None)
    assert BUILTIN.first_genre(["Other", "", "(17)"]) == (None, None)


def test_a_single_string_counts_as_one_value():
    assert BUILTIN.first_genre("Rock/Pop") == ("rock", "Rock")


# === User maps ===

def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_map_extends_the_builtin_and_wins(tmp_path):
    path = write(tmp_path / "map.csv", "# my corrections\ntag,genre,match\nSea Shanty,folk\nIndie,pop,exact\n"
                                       "Alt. Rock,,\ncore$,metal,regex\n")
    genre_map = GenreMap.from_file(path, base=GenreMap.builtin())
    assert genre_map.genre_of("Sea Shanty") == "folk"
    assert genre_map.genre_of("Indie") == "pop"  # the builtin says rock
    assert genre_map.genre_of("Alt. Rock") is None  # an empty genre ignores the value
    assert genre_map.genre_of("Hardcore") == "metal" and genre_map.genre_of("Post-Hardcore") == "metal"
    assert genre_map.genre_of("Hard Rock") == "rock"  # the builtin still answers the rest


def test_a_user_pattern_beats_a_builtin_exact_entry(tmp_path):
    path = write(tmp_path / "map.csv", "tag,genre,match\n^punk,rock,regex\n")
    genre_map = GenreMap.from_file(path, base=GenreMap.builtin())
    assert genre_map.genre_of("Punk Rock") == "rock" and genre_map.genre_of("Punk") == "rock"
    assert BUILTIN.genre_of("Punk Rock") == "punk"


def test_a_csv_map_alone_replaces_the_builtin(tmp_path):
    path = write(tmp_path / "map.csv", "tag,genre\nAlt. Rock,rock\n")
    genre_map = GenreMap.from_file(path)
    assert genre_map.genre_of("alt rock") == "rock"
    assert genre_map.genre_of("Hip-Hop") == "hip-hop"  # kept as its own genre, not through the builtin
    assert genre_map.genre_of("Rap") == "rap" and genre_map.keep_unmapped


def test_a_toml_map_extends_or_replaces_the_builtin(tmp_path):
    path = write(tmp_path / "map.toml", 'keep_unmapped = false\n[exact]\n"Alt. Rock" = "indie"\n"Other" = "misc"\n'
                                        '"Rock" = ""\n[patterns]\n\'\\bshanty$\' = "folk"\n')
    extended = GenreMap.from_file(path, base=GenreMap.builtin())
    assert extended.genre_of("Alt Rock") == "indie" and extended.genre_of("Other") == "misc"
    assert extended.genre_of("Rock") is None and extended.genre_of("Sea Shanty") == "folk"
    assert extended.genre_of("Jazz") == "jazz" and extended.genre_of("Polska") is None
    alone = GenreMap.from_file(path)
    assert alone.genre_of("Jazz") is None and alone.genre_of("Sea Shanty") == "folk"


def test_a_map_file_without_keep_unmapped_keeps_the_bases_choice(tmp_path):
    path = write(tmp_path / "map.toml", '[exact]\n"Polska" = "folk"\n')
    base = GenreMap({}, keep_unmapped=False)
    assert GenreMap.from_file(path, base=base).genre_of("Sea Shanty") is None
    assert GenreMap.from_file(path).genre_of("Sea Shanty") == "sea-shanty"


def test_a_map_file_with_a_byte_order_mark_reads_fine(tmp_path):
    path = tmp_path / "map.csv"
    path.write_bytes("tag,genre\nSea Shanty,folk\n".encode("utf-8-sig"))
    assert GenreMap.from_file(path).genre_of("sea shanty") == "folk"


@pytest.mark.parametrize("name, text, words", [
    ("map.txt", "tag,genre\n", ".csv or .toml"),
    ("map.csv", "genre,tag2\nrock,Rock\n", "tag,genre"),
    ("map.csv", "# only a comment\n", "no header row"),
    ("map.csv", "tag,genre,match\nRock,rock,glob\n", "line 2: match 'glob' is unknown; write exact or regex"),
    ("map.csv", "tag,genre,match\n(rock,rock,regex\n", "line 2: bad regular expression '(rock'"),
    ("map.csv", "tag,genre\nRock,rock/pop\n", "line 2: genre name 'rock/pop'"),
    ("map.csv", "tag,genre\nRock,.hidden\n", "start with '.'; rename it, e.g. 'hidden'"),
    ("map.csv", "tag,genre\n,rock\n", "line 2: empty tag"),
    ("map.csv", "tag,genre\n?!,rock\n", "line 2: tag '?!' has no letters or digits"),
    ("map.csv", "tag,genre\nAlt Rock,rock\n\nAlt. Rock,indie\n",
     "line 4: tag 'Alt. Rock' is already mapped to 'rock' at line 2; keep one"),
    ("map.toml", "[exact\n", "not valid TOML"),
    ("map.toml", "[exact]\nRock = 3\n", "[exact] 'Rock' = 3; the genre must be a string"),
    ("map.toml", "[patterns]\n'(' = \"rock\"\n", "[patterns] '(': bad regular expression"),
    ("map.toml", "[exact]\nRock = \"a/b\"\n", "[exact] 'Rock': genre name 'a/b'"),
    ("map.toml", "keep_unmapped = \"no\"\n", "write keep_unmapped = true or false"),
    ("map.toml", "[exacts]\n", "unknown key 'exacts'; use the tables [exact] and [patterns]"),
    ("map.toml", "exact = 1\n", "exact must be a table"),
], ids=lambda value: value if "\n" not in str(value) else None)
def test_a_bad_map_file_says_which_file_where_and_the_fix(tmp_path, name, text, words):
    path = write(tmp_path / name, text)
    with pytest.raises(DatasetError, match=re.escape(words)) as caught:
        GenreMap.from_file(path, base=GenreMap.builtin())
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert caught.value.parameter == "genre_map"


def test_a_missing_map_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"map\.csv: does not exist; pass a \.csv or \.toml genre map file"):
        GenreMap.from_file(tmp_path / "map.csv")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(DatasetError, match=r"dir\.toml: is a folder"):
        GenreMap.from_file(tmp_path / "dir.toml")


def test_a_map_file_that_is_not_utf8_says_the_line(tmp_path):
    path = tmp_path / "map.csv"
    path.write_bytes("tag,genre\nSea Shanty,folk\nMúsica,latin\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"map\.csv: line 3: not UTF-8 text; save the file as UTF-8"):
        GenreMap.from_file(path)


def test_toml_without_tomllib_asks_for_python_311_or_tomli(tmp_path, monkeypatch):
    monkeypatch.setattr(genres, "tomllib", None)
    with pytest.raises(DatasetError, match=r"needs Python 3\.11 or `pip install tomli`"):
        GenreMap.from_file(write(tmp_path / "map.toml", "[exact]\n"))


# === The tally ===

def test_tally_counts_kept_left_out_merged_ignored_and_untagged():
    songs = [["Rock"], ["Alt. Rock"], ["Hard Rock"], ["Alt. Rock", "Pop"], ["Jazz"], ["Jazz/Blues"], ["Bebop"],
             ["Sea Shanty"], ["Other"], ["Unknown", "(17)"], [], [""]]
    genres_of, tally = tally_genres(songs, BUILTIN, min_songs=3)
    assert genres_of == ["rock"] * 4 + ["jazz"] * 3 + [None] * 5
    assert tally == GenreTally(kept={"rock": 4, "jazz": 3}, left_out={"sea-shanty": 1},
                               merged={"rock": {"Alt. Rock": 2, "Hard Rock": 1}, "jazz": {"Bebop": 1}},
                               ignored={"Other": 1, "Unknown": 1, "(17)": 1}, untagged=2)
    assert list(tally.kept) == ["rock", "jazz"]  # most songs first


def test_tally_with_min_songs_one_keeps_every_genre():
    genres_of, tally = tally_genres([["Hip Hop"], ["R&B"], ["New Age"]], BUILTIN)
    assert genres_of == ["hip-hop", "r&b", "new-age"]
    assert tally.left_out == {} and tally.merged == {}  # same words as the genre name: nothing merged


@pytest.mark.parametrize("min_songs", [0, -1, 1.5, True])
def test_tally_refuses_a_min_songs_below_one(min_songs):
    with pytest.raises(DatasetError, match=rf"^min_songs={min_songs!r} must be a whole number >= 1") as caught:
        tally_genres([["Rock"]], BUILTIN, min_songs=min_songs)
    assert caught.value.parameter == "min_songs"

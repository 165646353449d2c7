"""How often ``tag`` restores genre tags a library lost, and how fast it tags.

A copy of a tagged library (``../shared/real-genres``: its mp3s keep their original, messy genre tags)
loses the genre tags of half its artists (drawn with --seed). ``build-dataset --from-tags`` learns the
genres from the other half's own tags (split by artist), ``fit`` trains the default CNN, and ``tag
--write`` fills in the untagged files. Reported: how many of the removed genres (mapped through the
built-in genre map) the prediction restores, over all untagged files and over those written (at the
default --min-confidence); files per second of ``tag`` (dry run and --write, every file classified
with --overwrite); and that ``tag --undo`` puts every file back byte for byte.

Run by hand:  python benchmarks/bench_tag.py [--library ../shared/real-genres] [--seed 0] [--epochs 10]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from _common import genre_cnn_command, machine


def run(*args: str, cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([*genre_cnn_command(), *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"genre-cnn {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def remove_half_the_tags(library: Path, metadata: Path, *, seed: int) -> dict[str, str | None]:
    """Drop the genre tag of every song of half the artists; returns path -> the genre it named."""
    import mutagen

    from genre_cnn.library.genres import GenreMap
    from genre_cnn.library.tags import read_tags

    with open(metadata, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    artists = sorted({row["artist"] for row in rows})
    random.Random(seed).shuffle(artists)
    untagged, genre_map, removed = set(artists[: len(artists) // 2]), GenreMap.builtin(), {}
    for row in rows:
        if row["artist"] in untagged:
            path = library / row["path"]
            removed[str(path)] = genre_map.first_genre(list(read_tags(path).genres))[0]
            song = mutagen.File(path)
            song.tags.delall("TCON")
            song.save()
    return removed


def digests(library: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(library.rglob("*.mp3"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path, default=Path("../shared/real-genres"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    source = args.library.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-tag-") as folder:
        work = Path(folder)
        library = work / "library"
        shutil.copytree(source, library, ignore=shutil.ignore_patterns("*.csv", "*.md"))
        for path in library.rglob("*"):  # a read-only source stays writable in the copy
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        removed = remove_half_the_tags(library, source / "metadata.csv", seed=args.seed)
        before = digests(library)
        build, output = run("build-dataset", "--from-tags", str(library), "--out", "data", "--min-songs", "10",
                            cwd=work)
        tally = output.split("\n\n")[0]
        fit, _ = run("fit", "--data", "data", "--model-dir", "models/tags", "--epochs", str(args.epochs), "-q",
                     cwd=work)
        dry, _ = run("tag", str(library), "--model", "models/tags", "--overwrite", "-q", cwd=work)
        wet, summary = run("tag", str(library), "--model", "models/tags", "--write", "--journal", "tags.jsonl",
                           "--report", "tags.csv", "-q", cwd=work)
        with open(work / "tags.csv", newline="", encoding="utf-8") as handle:
            decisions = {row["path"]: row for row in csv.DictReader(handle)}
        known = {path: genre for path, genre in removed.items() if genre}
        right = sum(decisions[path]["genre"] == genre for path, genre in known.items())
        written = [path for path in known if decisions[path]["written"] == "1"]
        right_written = sum(decisions[path]["genre"] == known[path] for path in written)
        undo, _ = run("tag", "--undo", "tags.jsonl", cwd=work)
        restored = digests(library) == before
        n = len(before)
    print(f"{machine()}; {time.strftime('%Y-%m-%d')}; library {source.name}, seed {args.seed}, {args.epochs} epochs\n")
    print(tally + "\n")
    print(f"build-dataset --from-tags: {build:.1f} s; fit: {fit:.1f} s")
    print(f"untagged files whose removed tag names a genre: {len(known)}; the prediction restores it for "
          f"{right} ({right / len(known):.1%})")
    print(f"written at the default --min-confidence: {len(written)} ({len(written) / len(known):.0%}), "
          f"right: {right_written} ({right_written / max(len(written), 1):.1%})")
    print(f"tag --overwrite (dry run, every file classified): {n} files in {dry:.1f} s = {n / dry:.0f} files/s")
    print(f"tag --write: {summary.strip().splitlines()[0]} in {wet:.1f} s")
    print(f"tag --undo: {undo:.2f} s; every file byte-identical to before: {restored}")


if __name__ == "__main__":
    main()

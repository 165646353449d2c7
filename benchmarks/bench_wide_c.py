"""How strong should the wide path's regression be? Its C, fixed or chosen per fit, measured on its own.

The default CNN's genres start as a logistic regression on each chunk's spectral summary
(``training.scratch.fit_wide_path``, ``C = WIDE_C``), and with a few songs a genre the trained network
barely moves from it (``bench_small_data.py``). This measures that regression alone, which takes
seconds where a CNN fold takes minutes: every chunk's summary is computed once, then for each fold a
regression at each ``C`` of a grid, and one whose ``C`` is chosen by a grouped 3-fold cross-validation
inside the training songs (what the baseline's grid search does). Song accuracy combines a song's
chunks as ``classify`` does (``inference.prediction.song_probabilities``).

Folds: 5 folds stratified by genre and grouped by artist (real-genres) or song, dealt by the seed with
scikit-learn's ``StratifiedGroupKFold`` (not the folds of ``bench_accuracy.py``: compare the rows of
this table with each other only). ``--songs-per-genre N`` instead trains on the draws of
``bench_small_data.py`` (N songs a genre, one per artist) and tests every other artist's song.

``--descriptors`` also appends to every chunk's summary its song's descriptors, those of
``genre-cnn features`` (tempo, onset rate, pYIN pitch statistics, MFCC...): would a regression that sees
both, the hybrid #27 allows, beat the wide path alone?

    python benchmarks/bench_wide_c.py --sets real dev --seeds 0,1,2
    python benchmarks/bench_wide_c.py --sets real --songs-per-genre 8 --draws 6
    python benchmarks/bench_wide_c.py --sets real dev demo --grid 0.01 --descriptors
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine
from bench_accuracy import DEV_MUSIC, REAL_GENRES, ROOT, build
from bench_small_data import draw_songs

GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def chunk_summaries(dataset) -> np.ndarray:
    """Every chunk's spectral summary, as the default network's wide path sees it (before standardising)."""
    from genre_cnn.data.arrays import RowReader
    from genre_cnn.models.cnn import build_model, summary_network
    from genre_cnn.training.scratch import band_statistics

    rows = np.arange(len(dataset.labels))
    mean, variance = band_statistics(dataset.features, rows)
    model = build_model(dataset.features.shape[1:], len(dataset.classes), mel_mean=mean, mel_variance=variance)
    trunk, read = summary_network(model), RowReader(dataset.features)
    return np.concatenate([trunk.predict(read(rows[start : start + 1024]), batch_size=256, verbose=0)
                           for start in range(0, len(rows), 1024)]).astype(np.float64)


def song_descriptor_rows(dataset, folder: Path) -> np.ndarray:
    """Each chunk's song's descriptors (``genre-cnn features``), a missing value replaced by its column's mean."""
    from genre_cnn.signal.descriptors import describe_songs, descriptor_columns

    song_list, _ = dataset.song_rows()
    described = describe_songs([folder / song for song in song_list])
    failed = [f"{song}: {row}" for song, row in zip(song_list, described) if isinstance(row, str)]
    if failed:
        raise SystemExit("descriptors failed: " + "; ".join(failed[:3]))
    table = np.array([[row[column] for column in descriptor_columns()] for row in described], dtype=np.float64)
    table = np.where(np.isfinite(table), table, np.nanmean(np.where(np.isfinite(table), table, np.nan), axis=0))
    index = {song: i for i, song in enumerate(song_list)}
    return table[[index[song] for song in dataset.songs]]


def song_accuracy(probabilities: np.ndarray, labels: np.ndarray, songs: np.ndarray) -> float:
    """Share of songs whose chunks, combined as ``classify`` combines them, give their genre."""
    from genre_cnn.inference.prediction import song_probabilities

    return float(np.mean([np.argmax(song_probabilities(probabilities[songs == song])) == labels[songs == song][0]
                          for song in np.unique(songs)]))


def held_out_accuracy(train: np.ndarray, test: np.ndarray, x: np.ndarray, labels, songs, *, c: float) -> float:
    """Song accuracy on ``test`` of a regression fitted on ``train``."""
    return song_accuracy(regression(train, x, labels, c=c).predict_proba(x[test]), labels[test], songs[test])


def regression(train: np.ndarray, summaries, labels, *, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(summaries[train], labels[train])


def chosen_c(train: np.ndarray, summaries, labels, songs, groups, *, seed: int) -> float:
    """The grid's C with the best song accuracy over a grouped 3-fold split of the training chunks."""
    from sklearn.model_selection import StratifiedGroupKFold

    scores = {c: [] for c in GRID}
    splitter = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=seed)
    for inner_train, inner_test in splitter.split(train, labels[train], groups[train]):
        fit_rows, test_rows = train[inner_train], train[inner_test]
        for c in GRID:
            scores[c].append(held_out_accuracy(fit_rows, test_rows, summaries, labels, songs, c=c))
    return max(GRID, key=lambda c: (np.mean(scores[c]), -abs(np.log(c / 0.01))))  # ties: nearest the default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=("demo", "dev", "real"), default=["real", "dev"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--songs-per-genre", type=int, default=None)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--grid", default=",".join(map(str, GRID)), help="comma-separated values of C")
    parser.add_argument("--no-choose", dest="choose", action="store_false", help="skip C chosen per fit")
    parser.add_argument("--descriptors", action="store_true",
                        help="also a regression on each chunk's summary and its song's descriptors")
    args = parser.parse_args()
    grid = [float(c) for c in args.grid.split(",")]

    from sklearn.model_selection import StratifiedGroupKFold

    from genre_cnn.data.dataset import load_dataset

    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as work:
        for name in args.sets:
            started = time.perf_counter()
            dataset = load_dataset(build(name, Path(work)))
            summaries = chunk_summaries(dataset)
            inputs = {"": summaries}
            if args.descriptors:
                folder = {"demo": ROOT / "tracks", "dev": DEV_MUSIC, "real": REAL_GENRES}[name]
                inputs[" + song descriptors"] = np.hstack([summaries, song_descriptor_rows(dataset, folder)])
            labels, songs = dataset.labels, dataset.songs
            groups = np.where(dataset.groups == "", songs, dataset.groups)
            song_list, first = dataset.song_rows()
            splits = []  # (training chunks, test chunks, seed)
            if args.songs_per_genre:
                for draw in range(args.draws):
                    train, test = draw_songs(song_list, labels[first], groups[first], per_genre=args.songs_per_genre,
                                             draw=draw)
                    splits.append((np.flatnonzero(np.isin(songs, song_list[train])),
                                   np.flatnonzero(np.isin(songs, song_list[test])), draw))
            else:
                for seed in map(int, args.seeds.split(",")):
                    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
                    splits += [(train, test, seed) for train, test in splitter.split(summaries, labels, groups)]
            accuracy: dict[str, list[float]] = {}
            choices = []
            for train, test, seed in splits:
                for suffix, x in inputs.items():
                    for c in grid:
                        accuracy.setdefault(f"C = {c}{suffix}", []).append(
                            held_out_accuracy(train, test, x, labels, songs, c=c))
                if args.choose:
                    choices.append(chosen_c(train, summaries, labels, songs, groups, seed=seed))
                    accuracy.setdefault("C chosen inside the training songs", []).append(
                        held_out_accuracy(train, test, summaries, labels, songs, c=choices[-1]))
            regime = (f"{args.songs_per_genre} songs a genre, {args.draws} draws" if args.songs_per_genre
                      else f"5 folds, seeds {args.seeds}")
            print(f"\n{name}: {len(song_list)} songs, {len(labels)} chunks, {summaries.shape[1]} summary features, "
                  f"{regime}, {time.perf_counter() - started:.0f} s")
            print("| wide path alone | song accuracy, mean ± std | splits |\n|---|---|---|")
            for row, values in accuracy.items():
                print(f"| {row} | {np.mean(values):.3f} ± {np.std(values):.3f} | {len(values)} |")
            if choices:
                print("C chosen: " + ", ".join(f"{c} ×{choices.count(c)}" for c in GRID if c in choices), flush=True)


if __name__ == "__main__":
    main()

"""Small data, measured with many test songs: N training songs a genre, every other artist's song tested.

Five folds of a 10-songs-a-genre subset (``bench_accuracy.py --songs-per-genre 10``) test 8 songs a
fold: one song is 12.5 points, and two recipes 3 points apart cannot be told apart. Here each
*draw* trains on N songs a genre (one from each of N artists on real-genres, N songs on the other
sets) and tests on every song of every other artist (~300 on real-genres), the way a user with a
small labelled collection then classifies the rest of their library. Every recipe of a draw gets
the same songs; the draws depend only on their number.

    python benchmarks/bench_small_data.py --sets real --songs-per-genre 8 --draws 6
    python benchmarks/bench_small_data.py --sets dev --songs-per-genre 6 --recipes scratch,baseline
    python benchmarks/bench_small_data.py --sets real --options '{"epochs": 5}'   # a variant of the CNN

Prints song accuracy per draw and mean ± std over the draws, as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine
from bench_accuracy import build


def draw_songs(songs: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, per_genre: int, draw: int):
    """Indices of the training songs (one from each of ``per_genre`` groups a genre) and of the test songs
    (every song of a group not drawn)."""
    rng = np.random.default_rng(1000 + draw)
    train = []
    for genre in np.unique(labels):
        mine = np.flatnonzero(labels == genre)
        for group in rng.permutation(sorted(set(groups[mine])))[:per_genre]:
            candidates = mine[groups[mine] == group]
            train.append(candidates[rng.integers(len(candidates))])
    train = np.sort(np.array(train))
    drawn = set(groups[train])
    return train, np.array([i for i in range(len(songs)) if groups[i] not in drawn])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=("demo", "dev", "real"), default=["real"])
    parser.add_argument("--songs-per-genre", type=int, default=8)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--recipes", default="scratch,baseline")
    parser.add_argument("--options", default="{}",
                        help='JSON TrainConfig fields for the trained recipes, e.g. {"learning_rate": 3e-4} or '
                             '{"options": {"crops_per_chunk": 3}}')
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    args = parser.parse_args()

    from genre_cnn.config import TrainConfig
    from genre_cnn.data.dataset import load_dataset
    from genre_cnn.kinds import recipe_named, trainer_for
    from genre_cnn.training.cv import fold_rows, train_fold
    from genre_cnn.training.recipes import TrainedRecipe

    options = json.loads(args.options)
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as work:
        for name in args.sets:
            dataset = load_dataset(build(name, Path(work)))
            songs, first = dataset.song_rows()
            labels, groups = dataset.labels[first], dataset.groups[first]
            groups = np.where(groups == "", songs, groups)  # real-genres: artists; the other sets: songs
            accuracy: dict[str, list[float]] = {}
            print(f"\n{name}: {len(songs)} songs, {args.songs_per_genre} training songs a genre, {args.draws} draws")
            for draw in range(args.draws):
                train, test = draw_songs(songs, labels, groups, per_genre=args.songs_per_genre, draw=draw)
                fold_of_song = {**{songs[i]: 1 for i in train}, **{songs[i]: 0 for i in test}}
                config = TrainConfig(**{"epochs": args.epochs, "seed": draw, **options})  # --options wins
                for recipe_name in args.recipes.split(","):
                    started = time.perf_counter()
                    recipe = recipe_named(recipe_name)
                    if isinstance(recipe, TrainedRecipe):  # a network: only the fold that trains on the draw
                        trained = recipe.configure(config)
                        data = trainer_for(trained).training_data(dataset, log=lambda message: None)  # or patches
                        _, train_rows, val_rows, test_rows = next(fold_rows(
                            data, fold_of_song, val_fraction=args.val_fraction, seed=draw))
                        result = train_fold(data_dir=str(dataset.path), config=trained, fold=0, train_rows=train_rows,
                                            val_rows=val_rows, test_rows=test_rows, data=data)
                    else:  # the baseline's folds take a second: both run; the first tests the draw's test songs
                        result = recipe.run_folds(dataset, fold_of_song, config=config, val_fraction=0,
                                                  log=lambda message: None)[0]
                    accuracy.setdefault(recipe_name, []).append(result["song_accuracy"])
                    print(f"draw {draw}: {recipe_name} {result['song_accuracy']:.3f} ({len(train)} training, "
                          f"{len(test)} test songs, {time.perf_counter() - started:.0f} s)", flush=True)
            print("\n| recipe | song accuracy, mean ± std over draws | each draw |\n|---|---|---|")
            for recipe_name, values in accuracy.items():
                print(f"| {recipe_name} | {np.mean(values):.3f} ± {np.std(values):.3f} | "
                      f"{' '.join(f'{v:.3f}' for v in values)} |", flush=True)


if __name__ == "__main__":
    main()

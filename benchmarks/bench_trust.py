"""Can the user trust a verdict? Unsure and unfamiliar flags of the default CNN on real music.

For each set (``../shared/real-genres`` with its artists kept together, ``../shared/dev-music`` by
song) and each split seed, it builds a dataset (15 % validation, 20 % test songs), fits the default
CNN (``fit --epochs 10``) and classifies the test songs and a set of clearly foreign recordings made
here: speech (``espeak-ng``, several voices and texts), white and brown noise, sine sweeps and steady
tones. It prints, per split and pooled:

- song accuracy of all test songs and of the *sure* ones (not flagged unsure), and the share flagged;
- the test songs' expected calibration error and Brier score before -> after calibration (``metrics.json``);
- novelty AUROC: test songs (in-genre, unseen) against the foreign recordings, and the share of each
  flagged unfamiliar at the model's threshold;
- with ``--leave-out GENRE``: the model is fitted without that genre; its songs are the foreign ones
  (AUROC against the held-out songs of the other genres);
- with ``--explain N``: for N test songs, whether hiding the 10 % most salient cells of the song's
  occlusion map (``genre-cnn explain``) lowers its genre's probability more than hiding 10 % random cells.

With ``--work DIR`` the datasets and models are kept, and a second run reuses them (no new fit).

    python benchmarks/bench_trust.py --sets real dev --seeds 0,1,2
    python benchmarks/bench_trust.py --sets real --seeds 0 --leave-out rock classical
    python benchmarks/bench_trust.py --sets real dev --seeds 0,1 --work /tmp/trust --explain 20

Needs ``espeak-ng`` (``apt-get install espeak-ng``) for the speech; without it speech is left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

ROOT = Path(__file__).resolve().parents[1]
SETS = {"real": (ROOT.parent / "shared" / "real-genres", "artist"),
        "dev": (ROOT.parent / "shared" / "dev-music", None)}  # by song: a style of dev-music has 2 sources
TEXTS = (
    "Welcome to the evening news. Today the parliament discussed the budget for the coming year, and many members "
    "asked questions about schools, hospitals and roads.",
    "In this episode of our podcast we talk about gardening, the weather, and how to grow tomatoes on a balcony in "
    "a small city apartment.",
    "Once upon a time there was a little girl who lived in a village near the forest. Whenever she went out, she "
    "wore a red riding cloak.",
    "Please remember to switch off your phones. The presentation will begin in five minutes, and questions are "
    "welcome at the end.",
)


def foreign_recordings(folder: Path, *, seconds: float = 30.0, sr: int = 22050) -> dict[str, list[Path]]:
    """Speech, noise, sweeps and tones, 30 s each, by kind."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    rng, n = np.random.default_rng(0), int(seconds * sr)
    t = np.arange(n) / sr
    made: dict[str, list[Path]] = {"speech": [], "noise": [], "sweep": [], "tone": []}
    if shutil.which("espeak-ng"):
        for i, text in enumerate(TEXTS):
            for voice in ("en", "en-us+f3"):
                path = folder / f"speech{i}_{voice.replace('+', '_')}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), (text + " ") * 3], check=True)
                made["speech"].append(path)
    for i in range(4):
        white = rng.normal(0, 0.1, n)
        brown = np.cumsum(rng.normal(0, 1, n))
        brown -= np.convolve(brown, np.ones(2000) / 2000, "same")
        f0, f1 = 20.0 * (i + 1), 8000.0
        sweep = 0.3 * np.sin(2 * np.pi * f0 * seconds / np.log(f1 / f0) * (np.exp(t / seconds * np.log(f1 / f0)) - 1))
        for kind, y in (("noise", white), ("noise", 0.1 * brown / np.std(brown)), ("sweep", sweep),
                        ("tone", 0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t))):
            path = folder / f"{kind}{len(made[kind])}.wav"
            soundfile.write(path, y.astype(np.float32), sr)
            made[kind].append(path)
    return made


def auroc(inside: list[float], outside: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([0] * len(inside) + [1] * len(outside), [*inside, *outside]))


def explanation_share(model: Path, songs: list[str]) -> tuple[float, float, float]:
    """Share of ``songs`` whose salient cells matter more than random ones, and the mean drops of each."""
    from genre_cnn.inference.classifier import open_classifier
    from genre_cnn.inference.occlusion import deletion_check, explain_song

    classifier = open_classifier(model)
    drops = np.array([deletion_check(classifier, explain_song(classifier, song)) for song in songs])
    return float(np.mean(drops[:, 0] > drops[:, 1])), float(drops[:, 0].mean()), float(drops[:, 1].mean())


def run_split(name: str, seed: int, work: Path, foreign: dict, *, leave_out: str | None = None,
              explain: int = 0) -> dict:
    from genre_cnn.config import TrainConfig
    from genre_cnn.data.build import build_dataset
    from genre_cnn.data.dataset import load_dataset, read_summary
    from genre_cnn.data.metadata import scan_metadata
    from genre_cnn.inference.classifier import classify
    from genre_cnn.training.fit import fit

    folder, group = SETS[name]
    songs = scan_metadata(folder / "metadata.csv", audio_root=folder, path_column="path", label_column="genre",
                          group_column=group)
    left_out = []
    if leave_out is not None:
        left_out = [song.path for song in songs.songs if song.label == leave_out]
        songs = dataclasses.replace(songs, songs=tuple(song for song in songs.songs if song.label != leave_out))
    tag = f"{name}-s{seed}" + (f"-without-{leave_out}" if leave_out else "")
    data, model, started = work / tag / "data", work / tag / "model", time.perf_counter()
    if not (model / "config.json").is_file():  # a kept model of an earlier run is reused
        data = build_dataset(songs, out=data, val_fraction=0.15, test_fraction=0.2, seed=seed).path
        started = time.perf_counter()
        fit(data, config=TrainConfig(epochs=10, seed=seed), model_dir=model, verbose=0, log=lambda message: None)
    seconds = time.perf_counter() - started
    dataset = load_dataset(data)
    root = Path(read_summary(data).tracks_dir)
    names, first = dataset.song_rows()
    test = dataset.splits[first] == "test"
    truth = {str(root / name): dataset.classes[label] for name, label in zip(names[test], dataset.labels[first[test]])}
    verdicts = classify(sorted(truth), model=model)
    right = [v.genre == truth[v.path] for v in verdicts]
    sure = [r for r, v in zip(right, verdicts) if not v.unsure]
    metrics = json.loads((model / "metrics.json").read_text())
    outside = {kind: classify(paths, model=model) for kind, paths in foreign.items() if paths}
    if left_out:
        outside = {f"genre {leave_out}": classify(left_out, model=model)}
    inside = [v.novelty for v in verdicts]
    everything = [v.novelty for kind in outside.values() for v in kind]
    explained = explanation_share(model, sorted(truth)[:: max(1, len(truth) // explain)][:explain]) if explain else None
    return {
        "explain": None if explained is None else {"songs": explain, "salient_wins": explained[0],
                                                    "salient_drop": explained[1], "random_drop": explained[2]},
        "split": tag, "fit_seconds": round(seconds, 1), "test_songs": len(verdicts),
        "accuracy": float(np.mean(right)), "sure_accuracy": float(np.mean(sure)) if sure else None,
        "unsure_share": float(np.mean([bool(v.unsure) for v in verdicts])),
        "ece": metrics.get("ece"), "ece_uncalibrated": metrics.get("ece_uncalibrated"),
        "brier": metrics.get("brier"), "brier_uncalibrated": metrics.get("brier_uncalibrated"),
        "unfamiliar_share_test": float(np.mean([bool(v.unfamiliar) for v in verdicts])),
        "auroc": auroc(inside, everything),
        # the same separation by the top probability (lower = more foreign): what a user has without novelty
        "top_probability_auroc": auroc([-max(v.probabilities.values()) for v in verdicts],
                                       [-max(v.probabilities.values()) for kind in outside.values() for v in kind]),
        "by_kind": {kind: {"songs": len(vs), "auroc": auroc(inside, [v.novelty for v in vs]),
                           "unfamiliar_share": float(np.mean([bool(v.unfamiliar) for v in vs]))}
                    for kind, vs in outside.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["real", "dev"], choices=sorted(SETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--leave-out", nargs="*", default=[], metavar="GENRE",
                        help="also fit without each of these genres (on the first set and seed)")
    parser.add_argument("--work", type=Path, default=None, help="keep datasets and models here (and reuse them)")
    parser.add_argument("--explain", type=int, default=0, metavar="N",
                        help="measure the occlusion maps of N test songs per split")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-trust-"))
    foreign = foreign_recordings(work / "foreign")
    kinds = ", ".join(f"{len(v)} {k}" for k, v in foreign.items())
    print(f"# {machine()}, {time.strftime('%Y-%m-%d')}; foreign: {kinds}")
    results = []
    for name in args.sets:
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_split(name, seed, work, foreign, explain=args.explain))
            print(json.dumps(results[-1]), flush=True)
    for genre in args.leave_out:
        results.append(run_split(args.sets[0], int(args.seeds.split(",")[0]), work, foreign, leave_out=genre,
                                 explain=args.explain))
        print(json.dumps(results[-1]), flush=True)
    print("\n| split | test songs | accuracy | sure accuracy (unsure share) | ECE before -> after | novelty AUROC "
          "(foreign flagged / test flagged) | top-probability AUROC | salient > random (drops) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        flagged = np.mean([k["unfamiliar_share"] for k in r["by_kind"].values()])
        sure = "-" if r["sure_accuracy"] is None else f"{r['sure_accuracy']:.3f}"
        ece = "-" if r["ece"] is None else (f"{r['ece_uncalibrated']:.3f} -> {r['ece']:.3f} (Brier "
                                            f"{r['brier_uncalibrated']:.3f} -> {r['brier']:.3f})")
        shown = r["explain"]
        why = "-" if shown is None else (f"{shown['salient_wins']:.0%} of {shown['songs']} "
                                         f"({shown['salient_drop']:.3f} vs {shown['random_drop']:.3f})")
        print(f"| {r['split']} | {r['test_songs']} | {r['accuracy']:.3f} | {sure} ({r['unsure_share']:.0%}) | {ece} | "
              f"{r['auroc']:.3f} ({flagged:.0%} / {r['unfamiliar_share_test']:.0%}) | "
              f"{r['top_probability_auroc']:.3f} | {why} |")
    for name in args.sets:
        mine = [r for r in results if r["split"].startswith(name + "-") and "without" not in r["split"]]
        if mine:
            pooled = {key: (np.mean([r[key] for r in mine]), np.std([r[key] for r in mine]))
                      for key in ("accuracy", "unsure_share", "auroc", "unfamiliar_share_test")}
            sure = [r["sure_accuracy"] for r in mine if r["sure_accuracy"] is not None]
            print(f"{name}: accuracy {pooled['accuracy'][0]:.3f} ± {pooled['accuracy'][1]:.3f}, sure accuracy "
                  f"{np.mean(sure):.3f} ± {np.std(sure):.3f} (unsure {pooled['unsure_share'][0]:.0%}), novelty AUROC "
                  f"{pooled['auroc'][0]:.3f} ± {pooled['auroc'][1]:.3f}, test songs flagged unfamiliar "
                  f"{pooled['unfamiliar_share_test'][0]:.0%}")


if __name__ == "__main__":
    main()

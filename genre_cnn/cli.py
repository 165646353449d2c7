"""The ``genre-cnn`` command line: parse options, call one library function, report."""

from __future__ import annotations

import functools
import json
import re
import sys
import warnings
from pathlib import Path

import click

from genre_cnn.errors import GenreCnnError, GenreCnnWarning
from genre_cnn.runtime.native import reuse_freed_memory
from genre_cnn.version import __version__

__all__ = ["main"]

POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
FRACTION = click.FloatRange(min=0, max=1, max_open=True)


def library_errors(command):
    """Turn :class:`GenreCnnError` into ``Error: <message>`` on stderr and exit code 1.

    The message is the library's, with its parameters spelled as this command's options
    (:func:`command_line_message`).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GenreCnnError as exc:
            options = option_names(click.get_current_context().command)
            raise click.ClickException(command_line_message(str(exc), options)) from None

    return wrapper


#: Library parameters spelled differently on the command line (the others: ``val_fraction`` is
#: ``--val-fraction``, ``fine_tune`` is ``--fine-tune``).
OPTION_ALIASES = {"learning_rate": "--lr"}
#: ``name=value`` in a library message: a quoted value, or one running to a space or to the
#: punctuation that ends it (``checkpoint=best.h5: ...``; ``augment=gain,mixup`` keeps its comma).
_PARAMETER = re.compile(r"\b([a-z][a-z0-9_]*)=('[^']*'|(?:[^\s,;:)]|[,:](?=\S))+)")


def option_names(command: click.Command) -> dict[str, str]:
    """Library parameter name -> how ``command`` spells it (``--val-fraction``, ``TRACKS_DIR``)."""
    names = {}
    for param in command.params:
        if isinstance(param, click.Argument):
            names[param.name] = param.human_readable_name
            continue
        spellings = [opt for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")]
        for opt in spellings:
            names[opt[2:].replace("-", "_")] = opt
        if spellings:
            names.setdefault(param.name, spellings[0])
    names.update({name: opt for name, opt in OPTION_ALIASES.items() if opt in names.values()})
    return names


def command_line_message(message: str, options: dict[str, str]) -> str:
    """Spell a library message's ``name=value`` parameters as options: ``val_fraction=1.2`` -> ``--val-fraction 1.2``.

    ``name=True`` becomes the bare flag; names that are not options of the command stay as they are.
    """

    def spell(match: re.Match) -> str:
        name, value = match.group(1), match.group(2).strip("'")
        if name not in options:
            return match.group(0)
        option = options[name]
        if not option.startswith("--"):  # an argument: its value is what the user typed
            return value
        return option if value == "True" else f"{option} {value}"

    return _PARAMETER.sub(spell, message)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="genre-cnn")
def main():
    """Teach a small CNN to tell music genres apart.

    \b
    Example:
        genre-cnn build-dataset tracks/
        genre-cnn fit --epochs 10
        genre-cnn classify song.mp3
    """
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print as their own bytes
        if hasattr(stream, "reconfigure") and getattr(stream, "encoding", "").lower().replace("-", "") == "utf8":
            stream.reconfigure(errors="surrogateescape")
    reuse_freed_memory()  # song after song allocates the same large arrays: keep them (runtime/native.py)
    warnings.showwarning = _show_notes


_python_showwarning = warnings.showwarning


def _show_notes(message, category, filename, lineno, file=None, line=None):
    """The library's own warnings print as one line, ``Note: ...``, on stderr; others as Python prints them."""
    if issubclass(category, GenreCnnWarning):
        click.echo(f"Note: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def feature_options(command):
    """Options of the feature config, shared by build-dataset and demo."""
    options = [
        click.option("--sr", type=click.IntRange(min=1000), default=22050, show_default=True,
                     help="Sample rate in Hz that every song is resampled to."),
        click.option("--chunk-seconds", type=POSITIVE_FLOAT, default=None,
                     help="Chunk length in seconds [default: 100000 samples, 4.54 s at 22050 Hz]."),
        click.option("--chunk-hop", type=POSITIVE_FLOAT, default=None,
                     help="Seconds between chunk starts; below --chunk-seconds means overlap "
                          "[default: no overlap]."),
        click.option("--tail", type=click.Choice(["drop", "pad"]), default="drop", show_default=True,
                     help="Audio after the last full chunk: ignore it, or zero-pad it into one more "
                          "chunk when it is at least half a chunk."),
        click.option("--short", type=click.Choice(["pad", "skip"]), default="pad", show_default=True,
                     help="Songs shorter than one chunk: zero-pad to one chunk, or skip them."),
        click.option("--n-fft", type=click.IntRange(min=16), default=2048, show_default=True,
                     help="STFT window length in samples."),
        click.option("--hop-length", type=click.IntRange(min=1), default=512, show_default=True,
                     help="STFT hop in samples."),
        click.option("--n-mels", type=click.IntRange(min=8), default=128, show_default=True,
                     help="Number of mel bands."),
        click.option("--fmin", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Lowest frequency of the mel bands in Hz."),
        click.option("--fmax", type=POSITIVE_FLOAT, default=None,
                     help="Highest frequency of the mel bands in Hz [default: sr/2]."),
        click.option("--trim-silence", "trim_db", type=POSITIVE_FLOAT, is_flag=False, flag_value=60.0,
                     default=None, metavar="[TOP_DB]",
                     help="Trim leading/trailing audio quieter than TOP_DB below the peak (default 60)."),
        click.option("--denoise", is_flag=True,
                     help="Spectral-gating noise reduction before chunking (needs the denoise extra)."),
        click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
                     help="How features.npy stores the chunks: float16 halves its disk and page cache."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _feature_config(sr, chunk_seconds, chunk_hop, **options):
    from genre_cnn.config import FeatureConfig

    return FeatureConfig.from_seconds(sr=sr, chunk_seconds=chunk_seconds, hop_seconds=chunk_hop, **options)


def _progress(quiet: bool, description: str):
    from tqdm import tqdm

    return functools.partial(tqdm, desc=description, unit="song", disable=quiet, file=sys.stderr,
                             dynamic_ncols=True, leave=False)


@main.command("build-dataset")
@click.argument("tracks_dir", type=click.Path(path_type=Path), required=False)
@click.option("--metadata", type=click.Path(path_type=Path), default=None,
              help="A CSV listing the songs (instead of TRACKS_DIR): one row per file with its genre.")
@click.option("--audio-root", type=click.Path(path_type=Path), default=None,
              help="Folder the --metadata paths are relative to [default: the CSV's folder].")
@click.option("--path-column", default="path", show_default=True, help="--metadata column with the file path.")
@click.option("--label-column", default="label", show_default=True, help="--metadata column with the genre.")
@click.option("--fold-column", default=None,
              help="--metadata column with predefined cross-validation folds (used by genre-cnn cv).")
@click.option("--group-column", default=None,
              help="--metadata column with a group (artist, album): a group's songs stay in one split.")
@click.option("--from-tags", "library", type=click.Path(path_type=Path), default=None,
              help="A music library (instead of TRACKS_DIR): every song below it, labelled by its own genre tag.")
@click.option("--genre-map", type=click.Path(path_type=Path), default=None,
              help="--from-tags: a CSV (tag,genre[,match]) or TOML genre map tried before the built-in one.")
@click.option("--no-builtin-genre-map", is_flag=True,
              help="--from-tags: use only --genre-map (unmapped tag values stay genres of their own).")
@click.option("--min-songs", type=click.IntRange(min=1), default=None,
              help="--from-tags: leave out genres with fewer songs [default: 5].")
@click.option("--split-by", type=click.Choice(["artist", "folder", "song"]), default=None,
              help="--from-tags: what stays in one split: the artist tag (songs without one: "
                   "their folder), the folder, or each song [default: artist].")
@click.option("--out", type=click.Path(path_type=Path), default=Path("data/dataset"), show_default=True,
              help="Dataset folder to write (replaced only when the new one is complete).")
@feature_options
@click.option("--val-fraction", type=FRACTION, default=0.15, show_default=True,
              help="Share of each genre's songs kept for validation (0 for none).")
@click.option("--test-fraction", type=FRACTION, default=0.2, show_default=True,
              help="Share of each genre's songs kept for the final test (0 for none).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the split.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes decoding songs in parallel [default: all cores].")
@click.option("--force", is_flag=True,
              help="Decode every song again instead of reusing unchanged songs of the previous build.")
@click.option("--shard", default=None, metavar="I/N",
              help="Build only shard I of N (for many machines); join them with merge-datasets.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="dask: build --shards shards as Dask tasks and merge them (needs the dask extra).")
@click.option("--shards", type=click.IntRange(min=1), default=4, show_default=True,
              help="Number of shards with --engine dask.")
@click.option("--scheduler", default=None,
              help="Dask scheduler for --engine dask: processes (default), threads, or tcp://HOST:PORT.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no table (skipped files still counted).")
@library_errors
def build_dataset_command(tracks_dir, metadata, audio_root, path_column, label_column, fold_column, group_column,
                          library, genre_map, no_builtin_genre_map, min_songs, split_by, out, val_fraction,
                          test_fraction, seed, workers, force, shard, engine, shards, scheduler, quiet, **features):
    """Slice every song of TRACKS_DIR/<genre>/ (or of a --metadata CSV, or of a library labelled by
    its own genre tags with --from-tags) into chunks and store their log-mel spectrograms.

    Songs are split into train/validation/test per song (per group with --group-column, per artist
    with --from-tags), before chunking, so no song is in two splits. Unreadable files are skipped
    and listed. With --from-tags, tag values are normalised through a genre map ("Alt. Rock" and
    "Hard Rock" -> rock), a multi-valued tag gives its first mapped value, and a table shows what
    was kept, merged, left out and untagged.

    \b
    Examples:
        genre-cnn build-dataset tracks/ --out data/dataset
        genre-cnn build-dataset --metadata meta.csv --audio-root audio/ --path-column file \\
            --label-column genre --group-column artist --fold-column fold
        genre-cnn build-dataset --from-tags library/ --genre-map my-genres.csv --min-songs 3 --out data/tagged
    """
    from genre_cnn.data.build import build_dataset
    from genre_cnn.data.metadata import scan_metadata
    from genre_cnn.data.shards import build_with_dask, parse_shard
    from genre_cnn.report import format_build_summary

    sources = [name for name, value in (("TRACKS_DIR", tracks_dir), ("--metadata", metadata),
                                        ("--from-tags", library)) if value is not None]
    if len(sources) != 1:
        raise click.UsageError("give one of TRACKS_DIR (genre folders), --metadata CSV or --from-tags LIBRARY"
                               + (f", not {' and '.join(sources)}" if sources else ""))
    tag_only = {"--genre-map": genre_map, "--no-builtin-genre-map": no_builtin_genre_map or None,
                "--min-songs": min_songs, "--split-by": split_by}
    if library is None and any(value is not None for value in tag_only.values()):
        used = [name for name, value in tag_only.items() if value is not None]
        raise click.UsageError(f"{', '.join(used)} only apply with --from-tags")
    if library is not None:
        return _build_from_tags(library, genre_map, no_builtin_genre_map, min_songs, split_by, out, quiet, shard,
                                engine, config=_feature_config(**features), val_fraction=val_fraction,
                                test_fraction=test_fraction, seed=seed, force=force, workers=workers)
    if metadata is None:
        csv_only = {"--audio-root": audio_root, "--fold-column": fold_column, "--group-column": group_column}
        used = [name for name, value in csv_only.items() if value is not None]
        if used:
            raise click.UsageError(f"{', '.join(used)} only apply with --metadata")
        songs = tracks_dir
    else:
        songs = scan_metadata(metadata, audio_root=audio_root, path_column=path_column, label_column=label_column,
                              fold_column=fold_column, group_column=group_column)
    options = dict(config=_feature_config(**features), val_fraction=val_fraction, test_fraction=test_fraction,
                   seed=seed, force=force)
    if engine == "dask":
        if shard is not None:
            raise click.UsageError("--shard and --engine dask exclude each other: dask makes the shards itself")
        report = build_with_dask(songs, out=out, shards=shards, scheduler=scheduler, **options)
    else:
        report = build_dataset(songs, out=out, workers=workers, progress=_progress(quiet, "decoding"),
                               shard=parse_shard(shard) if shard else None, **options)
    if not quiet:
        click.echo(format_build_summary(report.summary))
    elif report.summary.skipped:  # quiet drops the progress and the table, never the warnings
        click.echo(f"{len(report.summary.skipped)} file(s) skipped, see {report.skipped_list}")
    click.echo(f"Dataset written to {report.path}")


def _build_from_tags(library, genre_map, no_builtin_genre_map, min_songs, split_by, out, quiet, shard, engine,
                     **options):
    from genre_cnn.library.dataset import DEFAULT_MIN_SONGS, dataset_from_tags
    from genre_cnn.library.genres import GenreMap
    from genre_cnn.report import format_build_summary, format_genre_tally

    if shard is not None or engine != "local":
        raise click.UsageError("--from-tags builds on this machine: --shard and --engine dask do not apply")
    if no_builtin_genre_map and genre_map is None:
        raise click.UsageError("--no-builtin-genre-map needs --genre-map FILE (the map to use instead)")
    builtin = None if no_builtin_genre_map else GenreMap.builtin()
    mapping = GenreMap.from_file(genre_map, base=builtin) if genre_map is not None else builtin
    built = dataset_from_tags(library, out=out, genre_map=mapping, split_by=split_by or "artist",
                              min_songs=DEFAULT_MIN_SONGS if min_songs is None else min_songs,
                              progress=_progress(quiet, "songs"), **options)
    if not quiet:
        click.echo(format_genre_tally(built.library) + "\n")
        click.echo(format_build_summary(built.report.summary))
    elif built.report.summary.skipped:
        click.echo(f"{len(built.report.summary.skipped)} file(s) skipped, see {built.report.skipped_list}")
    click.echo(f"Dataset written to {built.report.path}")


def train_options(command):
    options = [
        click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Passes over the training chunks."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Chunks per training step."),
        click.option("--lr", type=POSITIVE_FLOAT, default=1e-3, show_default=True,
                     help="Learning rate of the optimiser (--optimizer)."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Seed of weights and shuffling; same seed, same model."),
        click.option("--mixed-precision", is_flag=True,
                     help="float16 maths with float32 weights: faster on recent GPUs, slower on CPUs."),
        click.option("--optimizer", type=click.Choice(["rmsprop", "adam"]), default="rmsprop", show_default=True,
                     help="Optimiser."),
        click.option("--class-weight", type=click.Choice(["none", "balanced"]), default="none", show_default=True,
                     help="balanced: weigh chunks inversely to their genre's size (for imbalanced data)."),
        click.option("--patience", type=click.IntRange(min=1), default=None,
                     help="Stop after this many epochs without a better validation loss [default: never]."),
        click.option("--reduce-lr", is_flag=True, help="Halve the learning rate when validation loss stalls."),
        click.option("--augment", default="", metavar="LIST",
                     help="Augment the training chunks (never validation/test), comma-separated: "
                          "shift, stretch, pitch, gain, noise, specaugment, mixup [default: none]."),
        click.option("--noise-snr", "noise_snr_db", type=float, default=20.0, show_default=True,
                     help="Signal-to-noise ratio in dB of --augment noise (white or pink noise)."),
        click.option("--gain-db", type=POSITIVE_FLOAT, default=6.0, show_default=True,
                     help="Largest level change of --augment gain, in dB."),
        click.option("--stretch", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.1,
                     show_default=True, help="Largest speed change of --augment stretch (0.1 = ±10 %%)."),
        click.option("--pitch-semitones", type=POSITIVE_FLOAT, default=2.0, show_default=True,
                     help="Largest pitch shift of --augment pitch, in semitones."),
        click.option("--mixup-alpha", type=POSITIVE_FLOAT, default=0.2, show_default=True,
                     help="Beta(alpha, alpha) weights of --augment mixup."),
        click.option("--backbone", type=click.Choice(["musicnn"]), default=None,
                     help="Train on top of a pretrained network (musicnn, Million Song Dataset) instead of "
                          "the CNN from scratch; the CNN's own options (--augment, --crop, --teacher, --head...) "
                          "then do not apply."),
        click.option("--freeze/--fine-tune", "freeze", default=True, show_default=True,
                     help="With --backbone: train a small head on cached embeddings (seconds), or also "
                          "update the backbone's top layers at a tenth of --lr."),
        click.option("--crop/--no-crop", "random_crop", default=True, show_default=True,
                     help="Cut each training chunk at a new random offset every epoch (validation and test "
                          "chunks are never cropped)."),
        click.option("--crops-per-chunk", type=click.IntRange(min=1), default=1, show_default=True,
                     help="With --crop: random crops of every training chunk per epoch (N times the steps)."),
        click.option("--teacher", type=click.Choice(["musicnn"]), default=None,
                     help="Distil: the CNN also learns the soft genre probabilities of a musicnn head trained "
                          "on the training songs only; the saved model stays the small CNN."),
        click.option("--temperature", type=click.FloatRange(min=1), default=2.0, show_default=True,
                     help="Softening of the --teacher's probabilities."),
        click.option("--keep-epoch", type=click.Choice(["last", "best"]), default="last", show_default=True,
                     help="Weights saved: the last epoch's, or the epoch with the lowest validation loss."),
        click.option("--distill-weight", type=click.FloatRange(min=0, max=1), default=0.5, show_default=True,
                     help="Share of the true-label loss with --teacher (the rest follows the teacher)."),
        click.option("--refit/--no-refit", default=True, show_default=True,
                     help="After training (validation songs measured, then used to calibrate), train again on "
                          "training + validation songs for the same epochs and save that model: more songs "
                          "learned from, twice the time."),
        click.option("--head", type=click.Choice(["wide", "summary"]), default="wide", show_default=True,
                     help="wide: the convolutions' genre logits plus a linear path from the chunk's spectral "
                          "summary, set by a logistic regression and kept frozen; summary (the previous default): "
                          "pooled features and band statistics through one dense layer."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _train_config(epochs, batch_size, lr, backbone=None, freeze=True, **options):
    """The command's training options as a checked TrainConfig: the shared ones, the kind (``--backbone``'s, else
    the CNN) and the options of a kind given on the command line; one of another kind is refused by its flag."""
    from click.core import ParameterSource

    from genre_cnn.config import SHARED_TRAIN_OPTIONS, TrainConfig
    from genre_cnn.errors import ConfigError
    from genre_cnn.kinds import configured, kind_taking

    context = click.get_current_context()
    shared = {name: options.pop(name) for name in SHARED_TRAIN_OPTIONS if name in options}
    given = {name: value for name, value in options.items()
             if context.get_parameter_source(name) is not ParameterSource.DEFAULT}
    if not freeze:  # --fine-tune; --freeze is what every kind does without it
        given["fine_tune"] = True
    config = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=lr, **shared, options=given,
                         **({"kind": backbone} if backbone else {}))
    try:
        return configured(config)
    except ConfigError as exc:
        owner = kind_taking(exc.parameter) if exc.parameter in given else None
        if owner is None or owner.name == config.kind:
            raise
        flag = next("/".join((*param.opts, *param.secondary_opts)) for param in context.command.params
                    if param.name == ("freeze" if exc.parameter == "fine_tune" else exc.parameter))
        where = "without --backbone" if owner.name == TrainConfig().kind else f"with --backbone {owner.name}"
        raise click.UsageError(f"{flag} only applies {where}") from None


@main.command("merge-datasets")
@click.argument("shard_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("data/dataset"), show_default=True,
              help="Merged dataset folder.")
@click.option("-q", "--quiet", is_flag=True, help="No table.")
@library_errors
def merge_datasets_command(shard_dirs, out, quiet):
    """Join datasets built with --shard I/N into one dataset.

    \b
    Example:
        for i in 0 1 2 3; do genre-cnn build-dataset tracks/ --shard $i/4 --out shards/$i; done
        genre-cnn merge-datasets shards/* --out data/dataset
    """
    from genre_cnn.data.shards import merge_datasets
    from genre_cnn.report import format_build_summary

    report = merge_datasets(shard_dirs, out=out)
    if not quiet:
        click.echo(format_build_summary(report.summary))
    click.echo(f"Dataset written to {report.path}")


@main.command("fit")
@click.option("--data", type=click.Path(path_type=Path), default=Path("data/dataset"), show_default=True,
              help="Dataset folder made by build-dataset.")
@train_options
@click.option("--name", default=None, help="Model name: saved as models/NAME [default: fit-DATE-TIME].")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None,
              help="Exact folder for the model (instead of models/NAME).")
@click.option("--tensorboard", type=click.Path(path_type=Path), default=None,
              help="Also write TensorBoard logs to this folder.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, metavar="FILE.keras",
              help="Save the model of the epoch to keep (--keep-epoch) to this file as training goes: every epoch "
                   "with 'last', every improving one with 'best' (for long runs).")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="After fitting the CNN, fit the pretrained musicnn backbone and the scikit-learn baseline on the "
                   "same songs and say which did better on the test songs (and how to fit it if one did).")
@click.option("-q", "--quiet", is_flag=True, help="No per-epoch lines.")
@library_errors
def fit_command(data, name, model_dir, tensorboard, checkpoint, compare, quiet, **train):
    """Train the CNN on the train songs, watch the validation songs, test on the test songs.

    Calibrates the probabilities on the validation songs, then trains again on train + validation
    songs (--no-refit: keep the first model). Saves model.keras, config.json, history.png,
    confusion.png, reliability.png and metrics.json; says whether the musicnn backbone or the
    baseline did better on the same test songs (--no-compare: skip that).

    \b
    Example:
        genre-cnn fit --epochs 10 --name first
    """
    from genre_cnn.report import format_metrics
    from genre_cnn.training.fit import fit

    result = fit(data, config=_train_config(**train), name=name, model_dir=model_dir, tensorboard=tensorboard,
                 checkpoint=checkpoint, compare=compare, verbose=0 if quiet else 2, log=click.echo)
    click.echo(f"Model saved to {result.model_dir}")
    click.echo(format_metrics(result.metrics))


@main.command("cv")
@click.option("--data", type=click.Path(path_type=Path), default=Path("data/dataset"), show_default=True,
              help="Dataset folder made by build-dataset.")
@train_options
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Number of folds (songs stratified by genre; a --group-column's groups kept together).")
@click.option("--csv-folds", is_flag=True, help="Use the folds of the metadata CSV's --fold-column instead.")
@click.option("--val-fraction", type=FRACTION, default=0.15, show_default=True,
              help="Share of each fold's training songs held out to watch (and with --keep-epoch best, to pick the "
                   "epoch); 0: train on them all.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for cv.json and confusion.png [default: models/cv-DATE-TIME].")
@click.option("--recipes", default=None, metavar="LIST",
              help="Compare recipes on the same folds, comma-separated: scratch (the CNN), teacher (the CNN "
                   "distilled from musicnn), musicnn (head on the backbone), baseline (scikit-learn).")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="dask: train the folds in parallel as Dask tasks (needs the dask extra); same results.")
@click.option("--scheduler", default=None,
              help="Dask scheduler for --engine dask: processes (default), threads, or tcp://HOST:PORT.")
@click.option("-q", "--quiet", is_flag=True, help="Only the summary.")
@library_errors
def cv_command(data, folds, csv_folds, val_fraction, recipes, out, engine, scheduler, quiet, **train):
    """Cross-validate: train one model per fold with the options of fit, test it on that fold's songs.

    Every song is tested once, by a model that never saw it. Prints mean ± std of song- and
    chunk-level accuracy and macro-F1; writes cv.json and a summed confusion matrix.

    With --recipes, compares several recipes on the same folds and prints one row each (which one
    should I use on my data?); writes cv.json and recipes.png.

    \b
    Examples:
        genre-cnn cv --folds 5 --epochs 10 --augment specaugment,mixup
        genre-cnn cv --recipes scratch,teacher,musicnn,baseline
    """
    from genre_cnn.report import format_cv, format_recipes
    from genre_cnn.training.cv import compare_recipes, cross_validate

    if scheduler is not None and engine != "dask":
        raise click.UsageError("--scheduler only applies with --engine dask")
    options = dict(config=_train_config(**train), folds=None if csv_folds else folds, val_fraction=val_fraction,
                   out=out, log=(lambda m: None) if quiet else click.echo, engine=engine, scheduler=scheduler)
    if recipes is None:
        result = cross_validate(data, **options)
        click.echo(format_cv(result.summary))
    else:
        result = compare_recipes(data, recipes=[name.strip() for name in recipes.split(",") if name.strip()], **options)
        click.echo(format_recipes(result.summary))
    click.echo(f"Written to {result.out}")


@main.command("classify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model folder [default: the latest fit, models/latest].")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Genres shown per song.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per file.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes classifying files in parallel [default: all cores].")
@click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto", show_default=True,
              help="What runs the network: the LiteRT export (fast start) when present, or Keras.")
@click.option("--timeline", is_flag=True,
              help="Genre probabilities over time (for long recordings): a table, or JSON with --json, plus "
                   "NAME.timeline.csv/.json/.png in --out.")
@click.option("--window", type=POSITIVE_FLOAT, default=None,
              help="--timeline window in seconds [default: the model's chunk length].")
@click.option("--hop", type=POSITIVE_FLOAT, default=None,
              help="--timeline seconds between windows [default: --window].")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="A results table (.csv, .jsonl, .parquet) written as it goes; run again to resume it. "
                   "With --timeline: the folder for the timeline files [default: timelines].")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="With --out: dask classifies on a dask.distributed cluster (--scheduler), tasks of 200 songs.")
@click.option("--scheduler", default=None, help="With --engine dask: the cluster's scheduler, tcp://HOST:PORT.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="Call a verdict unsure when its top probability is below this [default: the model's threshold, "
                   "chosen when it was fitted so that sure verdicts were right 90% of the time].")
@click.option("--explain", "explain_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also draw why each song got its genre (as 'genre-cnn explain') into this folder, NAME.why.png.")
@library_errors
def classify_command(paths, model, top_k, as_json, workers, backend, timeline, window, hop, out, engine, scheduler,
                     min_confidence, explain_dir):
    """Genre probabilities of songs (files or folders): mean over each song's chunks.

    Probabilities are calibrated on the model's validation songs (when it had at least 30), so that of
    the songs given 0.8, about 80 % should be right. A verdict less sure than the model's threshold
    says "unsure" and names its two likeliest genres. A song unlike every song the model learned from
    (speech, noise, a genre it was never taught) is flagged "unfamiliar", with its novelty: its
    distance to the nearest training songs, in units of their own spacing. Unreadable files
    get an error line and make the exit code 1; the others are still classified.
    With --out TABLE, a whole library goes into a table, one row per file, written as it goes: run
    the same command again after a crash, Ctrl-C or kill -9 and it skips the files already in the
    table (same path, size and modification time) and appends the rest.

    \b
    Example:
        genre-cnn classify song.mp3 --top-k 2
        genre-cnn classify song.mp3 --min-confidence 0.8
        genre-cnn classify music/ --json > genres.json
        genre-cnn classify music/ --out results.csv
        genre-cnn classify dj-set.mp3 --timeline --window 30 --hop 10
        genre-cnn classify music/ --explain why/
    """
    from genre_cnn.inference.classifier import classify
    from genre_cnn.report import format_prediction

    if min_confidence is not None and (out is not None or timeline):
        raise click.UsageError("--min-confidence applies to songs classified on the screen, not with --out or "
                               "--timeline: drop one of them")
    if explain_dir is not None and (out is not None or timeline):
        raise click.UsageError("--explain applies to songs classified on the screen, not with --out or --timeline: "
                               "drop one of them")
    if out is None or timeline:
        stray = [name for name, value in (("--engine", None if engine == "local" else engine),
                                          ("--scheduler", scheduler)) if value is not None]
        if stray:
            raise click.UsageError(f"{', '.join(stray)} only apply with --out TABLE")
    if not timeline:
        stray = [name for name, value in (("--window", window), ("--hop", hop)) if value is not None]
        if stray:
            raise click.UsageError(f"{', '.join(stray)} only apply with --timeline")
    elif out is not None and out.suffix.lower() in (".csv", ".jsonl", ".parquet"):
        raise click.UsageError(f"with --timeline, --out names a folder for the timeline files, not a table ({out})")
    else:
        return _classify_timelines(paths, model, backend, window, hop, out or Path("timelines"), as_json, top_k)
    if out is not None:
        if as_json:
            raise click.UsageError("--json and --out exclude each other: the table is the output")
        return _classify_into_table(paths, model, workers, backend, out, engine, scheduler)
    if explain_dir is not None:  # opened once, for the verdicts and the pictures
        from genre_cnn.inference.classifier import open_classifier

        model = open_classifier(model, backend=backend)
    predictions = classify(paths, model=model, workers=workers, backend=backend, min_confidence=min_confidence)
    if not predictions:
        raise click.ClickException(f"no audio files found in {', '.join(map(str, paths))}")
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in predictions], indent=2))
    for prediction in predictions:
        if not prediction.ok:
            click.echo(f"Error: {prediction.error}", err=True)
        elif not as_json:
            click.echo(format_prediction(prediction, top_k=top_k))
    if explain_dir is not None:
        _explain_all([p for p in predictions if p.ok], model, explain_dir, quiet=as_json)
    failed = sum(not p.ok for p in predictions)
    if failed:
        click.echo(f"Error: {failed} of {len(predictions)} file(s) could not be classified", err=True)
        sys.exit(1)


def _explain_all(predictions, classifier, folder: Path, *, quiet: bool) -> None:
    from genre_cnn.analysis.explain import explain

    taken = set()
    for prediction in predictions:
        stem, number = Path(prediction.path).stem, 0
        name = f"{stem}.why.png"
        while name in taken:  # two songs of one name: song.why.png, song-1.why.png...
            number += 1
            name = f"{stem}-{number}.why.png"
        taken.add(name)
        out = folder / name
        explain(prediction.path, model=classifier, out=out)
        if not quiet:
            click.echo(f"  why: {out}")


@main.command("explain")
@click.argument("song", type=click.Path(path_type=Path, readable=False))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model folder, any kind [default: the latest fit, models/latest].")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("why.png"), show_default=True,
              help="The picture to write (PNG).")
@click.option("--genre", default=None, help="Explain this genre instead of the one the model chose.")
@click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto", show_default=True,
              help="What runs the network.")
@library_errors
def explain_command(song, model, out, genre, backend):
    """Why a song got its genre: a picture of what pushed the model there.

    For a network: the song's log-mel with the regions whose hiding lowers the genre's probability most
    (occlusion: each third of a second by 16 mel bands is covered in turn and the network run again),
    above the genre probabilities of each chunk (a musicnn model: through its own front end). For a
    baseline: the descriptors whose loss lowers the genre's probability most. Prints the most telling
    regions (or descriptors).

    \b
    Examples:
        genre-cnn explain song.mp3 --out why.png
        genre-cnn explain song.mp3 --genre electronic --out why-electronic.png
    """
    from genre_cnn.analysis.explain import explain
    from genre_cnn.report import format_explanation

    click.echo(format_explanation(explain(song, model=model, out=out, genre=genre, backend=backend), out=out))


def _classify_into_table(paths, model, workers, backend, out, engine, scheduler):
    from tqdm import tqdm

    from genre_cnn.library.bulk import classify_library
    from genre_cnn.report import format_bulk_summary

    run = classify_library(paths, out=out, model=model, workers=workers, backend=backend, engine=engine,
                           scheduler=scheduler)
    with tqdm(run, total=len(run), desc="classifying", unit="song", file=sys.stderr, dynamic_ncols=True,
              leave=False) as rows:
        for row in rows:
            if row.error is not None:
                rows.write(f"Error: {row.error}", file=sys.stderr)
    click.echo(format_bulk_summary(run))
    if run.genres[None]:
        sys.exit(1)


def _classify_timelines(paths, model, backend, window, hop, out, as_json, top_k):
    from genre_cnn.inference.timeline import classify_timelines
    from genre_cnn.report import format_timeline

    outcomes = []
    for outcome in classify_timelines(paths, model=model, backend=backend, window=window, hop=hop, out=out):
        outcomes.append(outcome)
        if not outcome.ok:
            click.echo(f"Error: {outcome.error}", err=True)
        elif not as_json:
            click.echo(format_timeline(outcome, top_k=top_k))
    if as_json:
        click.echo(json.dumps([o.timeline.to_dict() for o in outcomes if o.ok], indent=2))
    failed = sum(not o.ok for o in outcomes)
    if failed:
        click.echo(f"Error: {failed} of {len(outcomes)} file(s) could not be classified", err=True)
        sys.exit(1)


@main.command("embed")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--out", type=click.Path(path_type=Path), default=Path("embeddings.npz"), show_default=True,
              help="The .npz file to write.")
@click.option("--patches", is_flag=True, help="Also store one embedding per 3 s patch.")
@library_errors
def embed_command(paths, out, patches):
    """200-d musicnn embeddings (Million Song Dataset model) of songs, for your own models.

    Writes paths and embeddings (one row per song: the mean over its 3 s patches), and with
    --patches also patch_embeddings, patch_song and patch_start. Unreadable files get an error
    line and make the exit code 1; the others are still embedded.

    \b
    Example:
        genre-cnn embed music/ --out emb.npz --patches
    """
    from genre_cnn.inference.embed import embed_songs, save_embeddings

    result = embed_songs(paths)
    for path, reason in result.failed:
        click.echo(f"Error: {reason}", err=True)
    if not result.paths:
        raise click.ClickException(f"nothing to embed in {', '.join(map(str, paths))}")
    save_embeddings(result, out, patches=patches)
    click.echo(f"{len(result.paths)} song(s), {len(result.patches)} patch(es) embedded: {out}")
    if result.failed:
        sys.exit(1)


@main.command("export")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model folder [default: the latest fit, models/latest].")
@click.option("--format", "fmt", type=click.Choice(["litert", "saved_model", "onnx"]), default="litert",
              show_default=True,
              help="LiteRT flatbuffer, TensorFlow SavedModel folder, or ONNX (needs the onnx extra).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write [default: in the model folder: model.tflite, saved_model/, model.onnx].")
@click.option("--weights", type=click.Choice(["float32", "int8"]), default=None,
              help="LiteRT only: int8 weights (a third of the file; up to half the network's time, depending on "
                   "the CPU; probabilities within ~0.02) or "
                   "float32 (the same numbers as Keras) [default: as fit writes model.tflite: int8 for the CNN].")
@library_errors
def export_command(model, fmt, out, weights):
    """Export a model for deployment (mobile, TF Serving, ONNX runtimes).

    The exported network takes raw log-mel chunks of shape (batch, n_mels, frames), exactly what
    genre_cnn.signal.logmel.log_mel returns with the model's config.json, and gives genre probabilities
    in the order of config.json's "classes".

    \b
    Example:
        genre-cnn export --model models/demo --format saved_model --out serving/genre/1
        genre-cnn export --model models/demo --weights float32
    """
    from genre_cnn.inference.export import export_model

    path = export_model(model, fmt=fmt, out=out, weights=weights)
    click.echo(f"Exported {fmt} to {path}")


@main.command("show")
@click.argument("song", type=click.Path(path_type=Path, readable=False))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="PNG to write [default: SONG_NAME.png here].")
@click.option("--offset", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Start of the excerpt drawn, in seconds.")
@click.option("--duration", type=POSITIVE_FLOAT, default=30.0, show_default=True,
              help="Length of the excerpt drawn, in seconds.")
@click.option("--chunk", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which chunk of the song to draw as the CNN's input.")
@click.option("--n-mfcc", type=click.IntRange(min=1), default=20, show_default=True, help="Number of MFCCs.")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Draw the CNN input with this model's feature settings [default: the defaults].")
@library_errors
def show_command(song, out, offset, duration, chunk, n_mfcc, model):
    """Draw a song: waveform, spectrum, STFT, mel spectrogram, MFCCs and what the CNN sees.

    \b
    Example:
        genre-cnn show tracks/chiptune/goattracker_dojo.mp3 --offset 5 --duration 10 --chunk 2
    """
    from genre_cnn.analysis.views import show_song

    path, _ = show_song(song, out=out, offset=offset, duration=duration, chunk=chunk, n_mfcc=n_mfcc, model=model)
    click.echo(f"Figure written to {path}")


@main.command("features")
@click.argument("tracks_dir", type=click.Path(path_type=Path), metavar="TRACKS_DIR_OR_CSV")
@click.option("--out", type=click.Path(path_type=Path), default=Path("features.csv"), show_default=True,
              help="CSV to write: one row per song.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes describing songs in parallel [default: all cores].")
@click.option("--audio-root", type=click.Path(path_type=Path), default=None,
              help="Folder a CSV's paths are relative to [default: the CSV's folder].")
@click.option("--path-column", default=None, help="CSV column with the file path [default: path].")
@click.option("--label-column", default=None, help="CSV column with the genre [default: label].")
@click.option("--group-column", default=None,
              help="CSV column with the artist (or album): kept in the table, so that baseline holds out whole "
                   "artists and calibrates on new ones.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@library_errors
def features_command(tracks_dir, out, workers, audio_root, path_column, label_column, group_column, quiet):
    """Handcrafted descriptors of every song (tempo, onsets, pitch, spectral statistics, MFCCs):
    of genre folders, or of a metadata CSV.

    \b
    Examples:
        genre-cnn features tracks/ --out features.csv
        genre-cnn features meta.csv --audio-root audio/ --path-column file --label-column genre \\
            --group-column artist --out features-by-artist.csv
    """
    from genre_cnn.data.descriptor_table import write_descriptor_table

    path, rows, skipped = write_descriptor_table(tracks_dir, out=out, workers=workers,
                                                 progress=_progress(quiet, "describing"), audio_root=audio_root,
                                                 path_column=path_column, label_column=label_column,
                                                 group_column=group_column)
    for song, reason in skipped:
        click.echo(f"Skipped: {reason}", err=True)
    click.echo(f"{rows} song(s) described in {path}")


@main.command("explore")
@click.argument("table", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("explore"), show_default=True,
              help="Folder for the plots and summary.txt.")
@library_errors
def explore_command(table, out):
    """Plots and a summary of a descriptor table: balance, histograms, correlations, PCA.

    \b
    Example:
        genre-cnn explore features.csv --out explore/
    """
    from genre_cnn.analysis.explore import explore

    click.echo(explore(table, out=out))
    click.echo(f"Plots written to {out}")


@main.command("baseline")
@click.argument("table", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("models/baseline"), show_default=True,
              help="Folder for the fitted baseline.")
@click.option("--test-fraction", type=FRACTION, default=0.2, show_default=True,
              help="Share of each genre's songs held out for the test (whole artists, when the table has a "
                   "group column: features --group-column).")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds (fewer if a genre has fewer training songs).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of split and search.")
@click.option("--tracks", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The folder the table was made from (a CSV's audio root): also save a reference profile for "
                   "'genre-cnn monitor'.")
@library_errors
def baseline_command(table, out, test_fraction, folds, seed, tracks):
    """Grid-search a scikit-learn baseline (logistic regression, random forest) on descriptors.

    \b
    Example:
        genre-cnn baseline features.csv --tracks tracks/ --out models/baseline
        genre-cnn classify --model models/baseline song.mp3
    """
    from genre_cnn.kinds.baseline import fit_baseline
    from genre_cnn.report import format_baseline

    metrics = fit_baseline(table, out=out, test_fraction=test_fraction, folds=folds, seed=seed, tracks_dir=tracks,
                           log=click.echo).metrics
    click.echo(format_baseline(metrics))
    click.echo(f"Baseline saved to {out}")


@main.command("evaluate")
@click.option("--model", type=click.Path(path_type=Path), required=True, help="CNN or baseline model folder.")
@click.argument("tracks_dir", type=click.Path(path_type=Path), metavar="TRACKS_DIR_OR_CSV")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write evaluation.json and confusion.png into this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
@click.option("--audio-root", type=click.Path(path_type=Path), default=None,
              help="Folder a CSV's paths are relative to [default: the CSV's folder].")
@click.option("--path-column", default="path", show_default=True, help="CSV column with the file path.")
@click.option("--label-column", default="label", show_default=True, help="CSV column with the genre.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="The unsure threshold to score [default: the model's own].")
@library_errors
def evaluate_command(model, tracks_dir, out, as_json, audio_root, path_column, label_column, min_confidence):
    """Accuracy, macro-F1, per-genre report and confusion matrix of a model on labelled songs:
    genre folders, or a metadata CSV; how well its probabilities are calibrated, and how its unsure
    and unfamiliar flags did (songs flagged, how many of them wrong, accuracy of the others). Songs of
    a genre folder the model does not know are always wrong: a good unfamiliar flag catches them.

    \b
    Examples:
        genre-cnn evaluate --model models/demo heldout/ --out reports/demo
        genre-cnn evaluate --model models/demo meta.csv --audio-root audio/ --path-column file --label-column genre
    """
    from genre_cnn.analysis.evaluate import evaluate_model
    from genre_cnn.report import format_evaluation

    result = evaluate_model(model, tracks_dir, out=out, audio_root=audio_root, path_column=path_column,
                            label_column=label_column, min_confidence=min_confidence)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(format_evaluation(result))
    if out is not None:
        click.echo(f"Written to {out}")


@main.command("compare")
@click.argument("model_a", type=click.Path(path_type=Path))
@click.argument("model_b", type=click.Path(path_type=Path))
@click.argument("tracks_dir", type=click.Path(path_type=Path))
@library_errors
def compare_command(model_a, model_b, tracks_dir):
    """Song accuracy of two models (CNN or baseline) on the same labelled songs, side by side.

    Use songs neither model trained on (for example a folder of held-out songs).

    \b
    Example:
        genre-cnn compare models/demo models/baseline heldout/
    """
    from genre_cnn.analysis.compare import compare_models
    from genre_cnn.report import format_table

    rows = compare_models([model_a, model_b], tracks_dir)
    click.echo(format_table(["model", "kind", "songs", "failed", "song accuracy"],
                            [[r["model"], r["kind"], r["songs"], r["failed"], f"{r['accuracy']:.1%}"]
                             for r in rows]))


@main.command("monitor")
@click.argument("incoming", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model folder [default: the latest fit, models/latest].")
@click.option("--min-songs", type=click.IntRange(min=2), default=8, show_default=True,
              help="Fewer readable incoming songs is an error, not a verdict.")
@click.option("--alpha", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Chance of a false alarm on undrifted audio, over all checks together.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write report.html (self-contained) and report.json into this folder.")
@click.option("--rebuild-profile", "dataset", type=click.Path(path_type=Path), default=None, metavar="DATASET",
              help="First (re)compute the model's reference profile from the dataset it was fitted on.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutation test.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@library_errors
def monitor_command(incoming, model, min_songs, alpha, as_json, out, dataset, seed, quiet):
    """Does incoming audio still look like the training data? Exit 0: no drift, 3: drift.

    INCOMING are songs (files, folders) or logs written by 'genre-cnn serve --log'.

    \b
    Example:
        genre-cnn monitor --model models/demo new_songs/
        genre-cnn monitor --model models/demo requests.jsonl --out drift-report
        genre-cnn monitor --model models/baseline new_songs/
        genre-cnn monitor --model models/old --rebuild-profile data/dataset new_songs/
    """
    from genre_cnn.models.registry import resolve_model_dir
    from genre_cnn.monitoring import monitor, rebuild_profile
    from genre_cnn.monitoring.html import format_drift, write_drift_report

    model_dir = resolve_model_dir(model)
    if dataset is not None:
        written = rebuild_profile(model_dir, dataset, log=lambda message: click.echo(message, err=True))
        click.echo(f"Reference profile written to {written}", err=True)
        if not incoming:
            return
    elif not incoming:
        raise click.UsageError("give the incoming songs (files, folders) or a serve log to compare")
    report = monitor(model_dir, incoming, min_songs=min_songs, alpha=alpha, seed=seed,
                     progress=_progress(quiet, "Profiling"))
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_drift(report))
    if out is not None:
        written = write_drift_report(report, out)
        click.echo(f"Written to {written['html']}", err=True)
    sys.exit(report.exit_code)


@main.command("tag")
@click.argument("library", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model folder [default: the latest fit, models/latest].")
@click.option("--write", is_flag=True,
              help="Write the genres into the files (without it, only show what would change).")
@click.option("--overwrite", is_flag=True, help="Also replace genre tags that files already have.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="Never write a genre whose probability is below this (the song is unsure) [default: the "
                   "model's threshold, chosen when it was fitted; 0.6 for a model without one].")
@click.option("--journal", type=click.Path(path_type=Path), default=None,
              help="Undo journal for --write [default: genre-cnn-tags-DATE-TIME.jsonl here].")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Also write one line per file to this .csv or .jsonl file.")
@click.option("--undo", type=click.Path(path_type=Path), default=None, metavar="JOURNAL",
              help="Put every file of a journal back exactly as it was before tag --write.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes classifying songs in parallel [default: all cores].")
@click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto", show_default=True,
              help="What runs the network: the LiteRT export (fast start) when present, or Keras.")
@click.option("-q", "--quiet", is_flag=True, help="No line per file and no progress bar: the summary only.")
@library_errors
def tag_command(library, model, write, overwrite, min_confidence, journal, report, undo, workers, backend, quiet):
    """Predict the genre of every song of LIBRARY (folders or files) and, with --write, write it into
    the file's own genre tag.

    Without --write nothing changes: each file's current genre, the prediction and what would
    change are shown. With --write, only files without a genre tag are written (--overwrite for the
    others), never a song below --min-confidence nor one the model flags unfamiliar (unlike every
    song it learned from, see classify); the old tags first go to an undo journal, the
    tags are written to a copy whose audio is checked to be byte-identical, and the copy replaces
    the file. A GENRE_CNN field names the model and probability, and a second run skips the files
    that model already tagged. mp3, wav, flac, ogg, opus and m4a files are supported.

    \b
    Examples:
        genre-cnn tag library/ --model models/demo
        genre-cnn tag library/ --model models/demo --write --journal tags.jsonl --report tags.csv
        genre-cnn tag --undo tags.jsonl
    """
    from tqdm import tqdm

    from genre_cnn.library.tagging import TagReport, tag_library
    from genre_cnn.report import format_tag_counts, format_tag_decision, format_undo

    if undo is not None:
        used = [name for name, value in (("LIBRARY", library or None), ("--write", write or None),
                                         ("--model", model), ("--journal", journal), ("--report", report))
                if value is not None]
        if used:
            raise click.UsageError(f"--undo JOURNAL takes no other input: drop {', '.join(used)}")
        from genre_cnn.library.tags import undo_journal

        summary = undo_journal(undo)
        click.echo(format_undo(summary))
        sys.exit(1 if summary.skipped else 0)
    if not library:
        raise click.UsageError("give LIBRARY (a folder of songs, or files), or --undo JOURNAL")
    if journal is not None and not write:
        raise click.UsageError("--journal only applies with --write")
    run = tag_library(library, model=model, write=write, overwrite=overwrite, workers=workers, backend=backend,
                      min_confidence=min_confidence, journal=journal)
    if not len(run):
        raise click.ClickException(f"no audio files found in {', '.join(map(str, library))}")
    table = TagReport(report) if report is not None else None
    try:
        with tqdm(total=len(run), desc="tagging" if write else "checking", unit="song", disable=quiet,
                  file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
            for decision in run:
                bar.update()
                if table is not None:
                    table.add(decision)
                if not quiet:
                    bar.write(format_tag_decision(decision), file=sys.stdout)
    finally:
        if table is not None:
            table.close()
    click.echo(format_tag_counts(run, write=write))
    if run.counts["error"]:
        sys.exit(1)


@main.command("serve")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model folder (CNN, musicnn or baseline) [default: the latest fit, models/latest].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; put a reverse proxy in front).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Inference processes, each with the model open [default: one per CPU core].")
@click.option("--queue", type=click.IntRange(min=0), default=None,
              help="Songs that may wait for a free process before the server answers 503 [default: 8 per process].")
@click.option("--max-upload-mb", type=POSITIVE_FLOAT, default=50.0, show_default=True,
              help="Largest upload accepted (larger: 413).")
@click.option("--max-seconds", type=POSITIVE_FLOAT, default=1800.0, show_default=True,
              help="Longest recording accepted, in seconds (longer: 422).")
@click.option("--log", type=click.Path(path_type=Path), default=None,
              help="Append one JSON line per classified song to this file (for drift monitoring).")
@click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto", show_default=True,
              help="What runs the network: the LiteRT export when present, or Keras.")
@library_errors
def serve_command(model, host, port, workers, queue, max_upload_mb, max_seconds, log, backend):
    """An HTTP API and a web page: drop a song in a browser, or POST it to /v1/classify.

    \b
    Example:
        genre-cnn serve --model models/latest --port 8000
        curl -F file=@song.mp3 http://127.0.0.1:8000/v1/classify
    """
    from genre_cnn.serving import ServerConfig, serve

    config = ServerConfig(model=model, workers=workers, queue=queue, max_upload_mb=max_upload_mb,
                          max_seconds=max_seconds, log=log, backend=backend)
    serve(config, host=host, port=port)


@main.command("demo")
@click.argument("tracks_dir", type=click.Path(path_type=Path), default=Path("tracks"))
@click.option("--out", type=click.Path(path_type=Path), default=Path("data/demo"), show_default=True,
              help="Dataset folder for the demo.")
@click.option("--name", default="demo", show_default=True, help="Model name (models/NAME).")
@train_options
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes decoding songs in parallel [default: all cores].")
@click.option("-q", "--quiet", is_flag=True, help="Only the final results.")
@library_errors
def demo_command(tracks_dir, out, name, workers, quiet, **train):
    """Run the whole pipeline on the demo tracks: build-dataset, fit, classify the test songs.

    \b
    Example:
        genre-cnn demo            # uses ./tracks, writes data/demo and models/demo
    """
    from genre_cnn.config import FeatureConfig
    from genre_cnn.data.build import build_dataset
    from genre_cnn.inference.classifier import classify
    from genre_cnn.report import format_build_summary, format_metrics, format_prediction
    from genre_cnn.training.fit import fit

    report = build_dataset(tracks_dir, out=out, config=FeatureConfig(), workers=workers,
                           progress=_progress(quiet, "decoding"))
    if not quiet:
        click.echo(format_build_summary(report.summary))
    result = fit(out, config=_train_config(**train), name=name, verbose=0 if quiet else 2, log=click.echo)
    click.echo(f"Model saved to {result.model_dir}")
    test_songs = [s["song"] for s in result.metrics.songs or []]
    if test_songs:
        click.echo("\nClassifying the held-out test songs (never seen in training):")
        for prediction in classify([Path(tracks_dir) / song for song in test_songs], model=result.model_dir):
            click.echo(format_prediction(prediction, top_k=len(report.summary.classes)))
    click.echo(format_metrics(result.metrics))


if __name__ == "__main__":
    main()

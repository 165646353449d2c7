"""Plain-text tables and lines that the command line prints."""

from __future__ import annotations

from typing import Optional

from genre_cnn.data.summary import SPLITS
from genre_cnn.kinds import recipe_named

__all__ = ["format_table", "format_build_summary", "format_metrics", "format_prediction", "format_cv", "format_recipes",
           "format_evaluation", "format_timeline", "format_baseline", "format_genre_tally", "format_tag_decision",
           "format_tag_counts", "format_undo", "format_bulk_summary", "format_calibration", "format_chance"]


def format_table(headers: list[str], rows: list[list], *, left: tuple[int, ...] = (0,)) -> str:
    """Left-align the columns ``left`` (the first, by default), right-align the others."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_build_summary(summary) -> str:
    """Songs and chunks per genre and split, then skipped files and notes."""
    headers = ["genre"] + [f"songs {s}" for s in SPLITS] + [f"chunks {s}" for s in SPLITS]
    rows, totals = [], [0] * 6
    for genre, splits in summary.per_class.items():
        counts = [splits[s]["songs"] for s in SPLITS] + [splits[s]["chunks"] for s in SPLITS]
        totals = [a + b for a, b in zip(totals, counts)]
        rows.append([genre, *counts])
    rows.append(["total", *totals])
    lines = [format_table(headers, rows)]
    skipped = summary.skipped
    if skipped:
        lines.append(f"\nSkipped {len(skipped)} file(s):")
        lines.extend(f"  {item['reason']}" for item in skipped)
    if summary.trimmed_seconds:
        lines.append(f"\nTrimmed {summary.trimmed_seconds:.1f} s of leading/trailing silence.")
    if summary.denoise_mean_db is not None:
        lines.append(f"Noise reduction lowered the level by {summary.denoise_mean_db:.1f} dB per song on average.")
    if summary.reused_songs:
        lines.append(f"\nReused {summary.reused_songs} unchanged song(s) from the previous build; "
                     f"decoded {summary.decoded_songs}.")
    if summary.notes:
        lines.append("\nNotes:")
        lines.extend(f"  {note}" for note in summary.notes)
    return "\n".join(lines)


def format_metrics(metrics) -> str:
    """Held-out accuracy per chunk and per song, as ``fit`` prints it."""
    if not metrics.test_songs:
        return f"No test accuracy: {metrics.note}."
    selected = metrics.selected_by or "val_loss"
    chosen = "the last" if selected == "last epoch" else f"lowest {selected}"
    lines = [
        f"Held-out test set: {metrics.test_songs} songs, {metrics.test_chunks} chunks "
        f"(kept epoch {metrics.best_epoch} of {metrics.epochs}: {chosen})",
        f"  chunk accuracy: {metrics.chunk_accuracy:.1%}",
        f"  song accuracy:  {metrics.song_accuracy:.1%}  "
        f"(always guessing the largest genre: {metrics.chance:.1%})",
    ]
    if metrics.ece is not None:
        lines.append(format_calibration(metrics))
    for name, other in (metrics.compared or {}).items():
        lines.append(format_comparison(name, other, metrics))
    if metrics.song_macro_f1 is not None:
        lines.append(f"  macro-F1: chunks {metrics.chunk_macro_f1:.2f}, songs {metrics.song_macro_f1:.2f}")
        rows = [[name, f"{c['precision']:.2f}", f"{c['recall']:.2f}", f"{c['f1']:.2f}", c["songs"]]
                for name, c in metrics.per_class.items()]
        lines.append("\n".join("  " + line for line in format_table(
            ["genre", "precision", "recall", "F1", "songs"], rows).splitlines()))
    return "\n".join(lines)


def format_comparison(name: str, other: dict, metrics) -> str:
    """What ``fit`` says about another recipe measured on the same test songs: better (and how to fit it) or not."""
    if "error" in other:
        return f"  {name}: could not be compared ({other['error']})"
    right = round(metrics.song_accuracy * metrics.test_songs)
    theirs = round(other["song_accuracy"] * other["test_songs"])
    line = (f"  {name} on the same songs: {theirs} of {other['test_songs']} test songs right "
            f"({other['song_accuracy']:.1%}), this model {right} ({metrics.song_accuracy:.1%})")
    if theirs > right:
        return (f"{line}.\nNote: {recipe_named(name).title} did better on your songs; fit it with: "
                f"{other['command']}")
    return line + ": this model is as good or better"


def format_calibration(metrics) -> str:
    """``  calibration (temperature T): ECE a -> b, Brier c -> d`` for a model's test songs (``none`` for a
    model with too few validation songs, or a baseline with too few training songs, to calibrate)."""
    if metrics.temperature == 1.0:
        line = (f"  calibration: none (too few songs to fit a temperature on); expected calibration error "
                f"{metrics.ece:.3f}, Brier score {metrics.brier:.3f}")
    else:
        line = (f"  calibration (temperature {metrics.temperature:.2f}): expected calibration error "
                f"{metrics.ece_uncalibrated:.3f} -> {metrics.ece:.3f}, Brier score "
                f"{metrics.brier_uncalibrated:.3f} -> {metrics.brier:.3f}")
    return line + format_chance(metrics.ece_chance, metrics.test_songs)


def format_chance(ece_chance: Optional[float], songs: int) -> str:
    """`` (a perfectly calibrated model would show ~x on n songs)``, or nothing for older results without it."""
    if ece_chance is None:
        return ""
    return f" (a perfectly calibrated model would show ~{ece_chance:.3f} on {songs} songs, by chance)"


def format_prediction(prediction, *, top_k: int) -> str:
    """``path  genre  (genre p, genre p, ...; n chunks)`` for one classified song; an unsure verdict reads
    ``path  unsure: genre or genre  (...)``, an unfamiliar song ends with ``  unfamiliar: not like the songs
    the model learned from (novelty x)``."""
    ranked = ", ".join(f"{genre} {p:.2f}" for genre, p in prediction.top(top_k))
    chunks = "1 chunk" if prediction.n_chunks == 1 else f"{prediction.n_chunks} chunks"
    verdict = prediction.genre
    if prediction.unsure:
        verdict = "unsure: " + " or ".join(genre for genre, _ in prediction.top(2))
    line = f"{prediction.path}  {verdict}  ({ranked}; {chunks})"
    if prediction.unfamiliar:
        line += f"  unfamiliar: not like the songs the model learned from (novelty {prediction.novelty:.1f})"
    return line


def format_explanation(explanation, *, out) -> str:
    """What ``genre-cnn explain`` prints: the verdict, the most telling regions (or descriptors), the picture."""
    lines = [f"{explanation.path}  {explanation.genre} {explanation.probability:.2f}  ({explanation.method})"]
    if hasattr(explanation, "top_regions"):
        regions = explanation.top_regions(3)
        moved = regions[0]["drop"] >= 0.001
        if moved:
            lines.append(f"most telling regions (what {explanation.genre} loses when they are hidden):")
        else:
            lines.append(f"no region's loss moves {explanation.genre} by 0.001 or more: the model is as sure of it "
                         "without any one of them")
        for region in regions if moved else []:
            lines.append(f"  {_clock(region['start'])}-{_clock(region['end'])}  {region['low_hz']:.0f}-"
                         f"{region['high_hz']:.0f} Hz  {-region['drop']:+.3f}")
    else:
        lines.append(f"most telling descriptors (what {explanation.genre} loses when each is set to the training "
                     "mean):")
        for name, drop in list(explanation.drops.items())[:5]:
            lines.append(f"  {name}  {-drop:+.2f}")
    lines.append(f"picture: {out}")
    return "\n".join(lines)


def format_timeline(outcome, *, top_k: int) -> str:
    """A recording's windows, one line each (``0:30.0-1:00.0  genre  (genre p, ...)``), under where it was written."""
    timeline, written = outcome.timeline, outcome.written
    lines = [f"{outcome.path}  ({len(timeline.starts)} windows; written to {written['png']} and .csv/.json)"]
    for entry in timeline.to_dict()["windows"]:
        ranked = "silent" if entry["probabilities"] is None else ", ".join(
            f"{g} {p:.2f}" for g, p in sorted(entry["probabilities"].items(), key=lambda i: -i[1])[:top_k])
        lines.append(f"  {_clock(entry['start'])}-{_clock(entry['end'])}  {entry['genre'] or '-'}  ({ranked})")
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def format_baseline(metrics) -> str:
    """What ``genre-cnn baseline`` prints: the grid's winner and, with test songs, its held-out accuracy."""
    lines = [f"Best of the grid ({metrics.cv_folds}-fold CV accuracy {metrics.cv_accuracy:.1%}): "
             f"{metrics.best_params['classifier']}"]
    if metrics.song_accuracy is not None:
        lines.append(f"Held-out test set: {metrics.test_songs} songs, song accuracy {metrics.song_accuracy:.1%}")
        if metrics.ece is not None:
            lines.append(format_calibration(metrics))
    return "\n".join(lines)


def format_cv(summary: dict) -> str:
    """Mean ± std of each cross-validation metric, as ``genre-cnn cv`` prints it."""
    rows = [[name.replace("_", " "), f"{summary[name]['mean']:.3f} ± {summary[name]['std']:.3f}"]
            for name in ("song_accuracy", "chunk_accuracy", "song_macro_f1", "chunk_macro_f1", "ece_uncalibrated",
                         "ece") if summary.get(name) is not None]
    head = (f"{summary['folds']}-fold cross-validation ({summary['fold_source']}), {summary['songs']} songs, "
            f"{summary['seconds']:.0f} s:")
    text = head + "\n" + format_table(["metric", "mean ± std over folds"], rows)
    if summary.get("ece_pooled") is not None:
        text += (f"\nexpected calibration error of every fold's test songs together: "
                 f"{summary['ece_uncalibrated_pooled']:.3f} (the networks' own) -> {summary['ece_pooled']:.3f} "
                 "(calibrated)" + format_chance(summary.get("ece_pooled_chance"), summary["songs"]))
    return text


def format_recipes(summary: dict) -> str:
    """One row per recipe (mean ± std over the same folds, CPU time), as ``genre-cnn cv --recipes`` prints it."""

    def cell(value):
        return "-" if value is None else f"{value['mean']:.3f} ± {value['std']:.3f}"

    recipes = summary["recipes"]
    best = max(recipes, key=lambda name: recipes[name]["song_accuracy"]["mean"])
    rows = [[name, cell(r["song_accuracy"]), cell(r["song_macro_f1"]), cell(r["chunk_accuracy"]),
             f"{r['cpu_seconds']:.0f} s"] for name, r in recipes.items()]
    head = (f"{summary['folds']}-fold cross-validation ({summary['fold_source']}), {summary['songs']} songs, "
            "every recipe on the same folds:")
    table = format_table(["recipe", "song accuracy", "song macro-F1", "chunk accuracy", "CPU time"], rows)
    return f"{head}\n{table}\nBest song accuracy: {best}"


def format_evaluation(evaluation: dict) -> str:
    """What ``genre-cnn evaluate`` prints: the scores, per-genre table, confusion, and every file it
    could not classify."""
    failed = evaluation["failed"]
    lines = [f"{evaluation['songs']} songs ({len(failed)} could not be classified): "
             f"accuracy {evaluation['accuracy']:.1%}, macro-F1 {evaluation['macro_f1']:.2f}"]
    if evaluation.get("ece") is not None:
        lines.append(f"probabilities: expected calibration error {evaluation['ece']:.3f}, Brier score "
                     f"{evaluation['brier']:.3f} ({evaluation['calibration_songs']} songs of genres the model knows)"
                     + format_chance(evaluation.get("ece_chance"), evaluation["calibration_songs"]))
    unsure = evaluation.get("unsure")
    if unsure is not None:
        sure = "-" if unsure["sure_accuracy"] is None else f"{unsure['sure_accuracy']:.1%}"
        lines.append(f"unsure (top probability below {unsure['min_confidence']:.2f}): {unsure['songs']} songs "
                     f"({unsure['share']:.0%}), {unsure['wrong']} of them wrong; accuracy of the sure ones {sure}")
    unfamiliar = evaluation.get("unfamiliar")
    if unfamiliar is not None:
        rest = "-" if unfamiliar["familiar_accuracy"] is None else f"{unfamiliar['familiar_accuracy']:.1%}"
        lines.append(f"unfamiliar (novelty above {unfamiliar['max_novelty']:.2f}): {unfamiliar['songs']} songs "
                     f"({unfamiliar['share']:.0%}), {unfamiliar['wrong']} of them wrong "
                     f"({unfamiliar['unknown_genre']} of a genre the model does not know); accuracy of the others "
                     f"{rest}")
    lines += [format_table(["genre", "precision", "recall", "F1", "songs"],
                          [[n, f"{c['precision']:.2f}", f"{c['recall']:.2f}", f"{c['f1']:.2f}", c["songs"]]
                           for n, c in evaluation["per_class"].items()]),
             "confusion (rows: true genre, columns: predicted):",
             format_table(["", *evaluation["classes"]],
                          [[n, *row] for n, row in zip(evaluation["classes"], evaluation["confusion"])])]
    if evaluation["unknown_genres"]:
        lines.append(f"genres the model does not know (always wrong): {', '.join(evaluation['unknown_genres'])}")
    if evaluation.get("unclassified_genres"):
        lines.append("genres none of whose songs could be classified (not scored): "
                     + ", ".join(evaluation["unclassified_genres"]))
    if failed:
        lines.append("could not be classified:")
        lines.extend(f"  {entry['error']}" for entry in failed)
    return "\n".join(lines)


def format_genre_tally(labelled) -> str:
    """What the genre map made of a library's tags (a :class:`genre_cnn.library.dataset.TaggedLibrary`)."""
    tally = labelled.tally
    rows = [[genre, songs, "kept", _merged(tally.merged.get(genre, {}))] for genre, songs in
            sorted(tally.kept.items(), key=lambda item: -item[1])]
    rows += [[genre, songs, "left out (too few songs)", _merged(tally.merged.get(genre, {}))] for genre, songs in
             sorted(tally.left_out.items(), key=lambda item: -item[1])]
    rows += [[f"({value})", songs, "ignored tag value", ""] for value, songs in
             sorted(tally.ignored.items(), key=lambda item: -item[1])]
    rows.append(["(no genre tag)", tally.untagged, "not used", ""])
    lines = [format_table(["genre", "songs", "", "from tag values"], rows, left=(0, 2, 3))]
    if labelled.unsupported:
        lines.append(f"{labelled.unsupported} audio file(s) of a format whose tags are not read (not used)")
    lines += [f"Unreadable tags: {path}: {reason}" for path, reason in labelled.unreadable[:20]]
    if len(labelled.unreadable) > 20:
        lines.append(f"... and {len(labelled.unreadable) - 20} more files with unreadable tags")
    return "\n".join(lines)


def _merged(values: dict) -> str:
    return ", ".join(f"{value} ({songs})" for value, songs in sorted(values.items(), key=lambda item: -item[1]))


def format_tag_decision(decision) -> str:
    """One line per file of ``genre-cnn tag``: what happens, the prediction, and the file."""
    predicted = "" if decision.genre is None else f"{decision.genre} {decision.probability:.2f}"
    action = "written" if decision.written else decision.action
    return f"{action:<7} {predicted:<18} {decision.path}: {decision.reason}"


def format_tag_counts(run, *, write: bool) -> str:
    """The summary line of ``genre-cnn tag``, and how to undo it."""
    from genre_cnn.library.tagging import ACTIONS  # lazy: report.py is imported by every command

    counts = run.counts
    total = sum(counts[action] for action in ACTIONS)
    parts = [f"{counts['written']} written" if write else f"{counts['write']} would be written",
             f"{counts['keep']} kept", f"{counts['skip']} skipped", f"{counts['error']} error(s)"]
    line = f"{total} file(s): " + ", ".join(parts)
    if write and counts["written"]:
        line += f"\nUndo journal: {run.journal} (undo with: genre-cnn tag --undo {run.journal})"
    elif not write and counts["write"]:
        line += "\nNothing was changed: add --write to write these genres"
    return line


def format_undo(summary) -> str:
    """What ``genre-cnn tag --undo`` did."""
    lines = [f"Skipped {path}: {reason}" for path, reason in summary.skipped]
    lines.append(f"{len(summary.restored)} file(s) restored exactly, {len(summary.unchanged)} already as before, "
                 f"{len(summary.skipped)} skipped")
    return "\n".join(lines)


def format_bulk_summary(run) -> str:
    """Songs per genre of a ``classify --out`` run, and what the table holds."""
    classified = sum(run.genres.values())
    rows = [[genre, songs, f"{songs / classified:.0%}"] for genre, songs in
            sorted(((g, n) for g, n in run.genres.items() if g is not None), key=lambda item: -item[1])]
    lines = [format_table(["genre", "songs", "share"], rows)] if rows else []
    lines.append(f"{run.files} file(s): {classified} classified now ({run.genres[None]} error(s)), "
                 f"{run.already_done} already in {run.table.path}")
    return "\n".join(lines)

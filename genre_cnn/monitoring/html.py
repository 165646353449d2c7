"""The drift report as text for the terminal and as one self-contained HTML file."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

from genre_cnn.monitoring.drift import DriftReport
from genre_cnn.runtime.files import atomic_file, ensure_folder

__all__ = ["format_drift", "write_drift_report"]


def format_drift(report: DriftReport) -> str:
    """A table of the checks and the verdict, e.g. for the terminal."""
    lines = [f"Model {report.model}: {report.n_reference} reference song(s), {report.n_incoming} incoming "
             f"(false-alarm rate {report.alpha:g} over all checks, Holm)",
             f"{'check':<24}{'test':<22}{'statistic':>10}{'p':>10}{'adj. p':>10}  verdict   detail"]
    for check in report.checks:
        if check.p_value is None:
            lines.append(f"{check.name:<24}{check.test:<22}{'-':>10}{'-':>10}{'-':>10}  skipped   {check.detail}")
            continue
        verdict = "DRIFT" if check.drifted else "ok"
        lines.append(f"{check.name:<24}{check.test:<22}{check.statistic:>10.3g}{check.p_value:>10.2g}"
                     f"{check.adjusted_p:>10.2g}  {verdict:<8}  {check.detail}")
    for path, reason in report.skipped:
        lines.append(f"skipped {path}: {reason}")
    drifted = [check.name for check in report.checks if check.drifted]
    lines.append(f"Drift: {', '.join(drifted)}" if drifted else "No drift detected")
    return "\n".join(lines)


def write_drift_report(report: DriftReport, out: str | os.PathLike) -> dict:
    """Write ``report.html`` (plots inline, no external assets) and ``report.json`` into ``out``.

    Returns
    -------
    dict
        Paths written, by kind (``html``, ``json``).
    """
    out = ensure_folder(out, what="drift report")
    written = {"html": out / "report.html", "json": out / "report.json"}
    _write_atomically(written["json"], json.dumps(report.to_dict(), indent=2))
    _write_atomically(written["html"], _html(report))
    return written


def _write_atomically(path: Path, text: str) -> None:
    with atomic_file(path) as partial:
        partial.write_text(text, encoding="utf-8")


def _html(report: DriftReport) -> str:
    rows = "\n".join(
        f"<tr class=\"{'drift' if c.drifted else ''}\"><td>{html.escape(c.name)}</td><td>{html.escape(c.test)}</td>"
        f"<td>{'' if c.statistic is None else f'{c.statistic:.3g}'}</td>"
        f"<td>{'' if c.p_value is None else f'{c.p_value:.2g}'}</td>"
        f"<td>{'' if c.adjusted_p is None else f'{c.adjusted_p:.2g}'}</td>"
        f"<td>{'skipped' if c.p_value is None else 'DRIFT' if c.drifted else 'ok'}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>"
        for c in report.checks)
    skipped = "".join(f"<li>{html.escape(p)}: {html.escape(r)}</li>" for p, r in report.skipped)
    drifted = ", ".join(c.name for c in report.checks if c.drifted)
    verdict = f"Drift: {drifted}" if report.drifted else "No drift detected"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>genre-cnn drift report: {html.escape(report.model)}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #1b1b1b; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3rem; text-align: left; }}
tr.drift td {{ background: #fde8e8; font-weight: 600; }} img {{ max-width: 100%; }}
.verdict {{ font-size: 1.3rem; font-weight: 700; color: {'#b00020' if report.drifted else '#1b7f3b'}; }}
</style></head><body>
<h1>Drift report: model {html.escape(report.model)}</h1>
<p class="verdict">{html.escape(verdict)}</p>
<p>{report.n_reference} reference song(s) (saved when the model was fitted) against {report.n_incoming} incoming
song(s). Each check's p-value is the chance of a difference at least this large if nothing had changed; the
adjusted p-values (Holm) keep the chance of any false alarm below {report.alpha:g}.</p>
<table><thead><tr><th>check</th><th>test</th><th>statistic</th><th>p</th><th>adjusted p</th><th>verdict</th>
<th>detail</th></tr></thead><tbody>
{rows}
</tbody></table>
{f'<h2>Skipped files</h2><ul>{skipped}</ul>' if skipped else ''}
<h2>Reference and incoming, side by side</h2>
<img alt="Reference and incoming songs: spectral balance, loudness, silence, durations, genres, confidence"
     src="data:image/png;base64,{_figure(report)}">
</body></html>
"""


def _figure(report: DriftReport) -> str:
    """One PNG (base64) of the summaries: band quartiles, audio quantiles, genre shares, confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    reference, incoming = report.summaries["reference"], report.summaries["incoming"]
    colours = {"reference": "#2457c5", "incoming": "#d1495b"}
    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    ax = axes[0, 0]
    for name, summary in (("reference", reference), ("incoming", incoming)):
        if summary["band_quartiles"]:
            low, median, high = (np.array(q) for q in summary["band_quartiles"])
            bands = np.arange(len(median))
            ax.plot(bands, median, color=colours[name], label=name)
            ax.fill_between(bands, low, high, color=colours[name], alpha=0.2)
    ax.set(title="Spectral balance (median, quartiles)", xlabel="mel band", ylabel="mean log-mel (dB)")
    ax.legend()
    for ax, (field, title) in zip([axes[0, 1], axes[0, 2], axes[1, 0]],
                                  [("loudness_db", "Loudness (dBFS)"), ("silence", "Silence (share of time)"),
                                   ("seconds", "Duration (s)")]):
        for position, name in enumerate(("reference", "incoming")):
            q = reference[field] if name == "reference" else incoming[field]
            if q:
                ax.bxp([{"whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4], "label": name}],
                       positions=[position], showfliers=False, widths=0.5,
                       boxprops={"color": colours[name]}, medianprops={"color": colours[name]})
        ax.set_title(f"{title}: 5–95 % range")
    ax = axes[1, 1]
    genres = list(reference["genre_shares"])
    x = np.arange(len(genres))
    ax.bar(x - 0.2, [reference["genre_shares"][g] for g in genres], 0.4, color=colours["reference"], label="reference")
    ax.bar(x + 0.2, [incoming["genre_shares"].get(g, 0) for g in genres], 0.4, color=colours["incoming"],
           label="incoming")
    ax.set_xticks(x, genres, rotation=30, ha="right")
    ax.set(title="Predicted genres (share of songs)")
    ax.legend()
    ax = axes[1, 2]
    for position, (name, summary) in enumerate((("reference", reference), ("incoming", incoming))):
        q = summary["top_probability"]
        if q:
            ax.bxp([{"whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4], "label": name}],
                   positions=[position], showfliers=False, widths=0.5,
                   boxprops={"color": colours[name]}, medianprops={"color": colours[name]})
    ax.set_title("Confidence (top probability): 5–95 %")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")

"""The results table of a bulk classification: one row per file, written as it goes, resumable.

The one place that knows its formats: CSV (``.csv``), JSON Lines (``.jsonl``) and, when pyarrow is
installed, Parquet (``.parquet``). CSV and JSON Lines grow one complete line at a time (one
``write`` call per line, so a killed run leaves at most one torn last line, which the next run
cuts off); a Parquet table cannot be appended to, so its rows go to a hidden JSON Lines file
beside it (``.NAME.parquet.rows.jsonl``) and the Parquet file is written, atomically, when the
run ends. Text cells are valid UTF-8 whatever the file names (:mod:`genre_cnn.runtime.csvfiles`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from pathlib import Path
from typing import Optional, Sequence

from genre_cnn.errors import ConfigError
from genre_cnn.runtime.csvfiles import escape_text, read_csv, unescape_text
from genre_cnn.runtime.files import atomic_file

__all__ = ["RESULT_FORMATS", "ResultRow", "ResultsTable"]

#: File name endings of the table formats.
RESULT_FORMATS = (".csv", ".jsonl", ".parquet")
#: The verdict's flags, a column each (after ``chunks``); tables written before them are resumed without.
FLAG_COLUMNS = ("unsure", "novelty", "unfamiliar")
#: Seconds between two ``fsync`` calls of a growing table (rows reach the page cache at once).
SYNC_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class ResultRow:
    """One file's verdict.

    Attributes
    ----------
    path : str
    size, mtime_ns : int
        The file's size and modification time when classified (a file that changes is classified again).
    model : str
        The model that classified it (``NAME@FINGERPRINT``).
    genre : str or None
    probabilities : dict of str to float, or None
        Every genre's probability.
    chunks : int
    error : str or None
        Why the file could not be classified.
    unsure, novelty, unfamiliar
        The verdict's flags (:class:`~genre_cnn.inference.prediction.SongPrediction`); None where the model
        has none, or in a table written before they were recorded.
    """

    path: str
    size: int
    mtime_ns: int
    model: str
    genre: Optional[str]
    probabilities: Optional[dict]
    chunks: int
    error: Optional[str]
    unsure: Optional[bool] = None
    novelty: Optional[float] = None
    unfamiliar: Optional[bool] = None


class ResultsTable:
    """A results table to append to; what it already holds is read first.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.jsonl`` or ``.parquet``.
    classes : sequence of str
        The model's genres (a column each in CSV and Parquet).
    model : str
        The model's identity; a table written by another model is refused.

    Attributes
    ----------
    done : dict of str to (int, int)
        Path -> ``(size, mtime_ns)`` of every file the table already holds.

    Raises
    ------
    ConfigError
        Unknown ending, Parquet without pyarrow, a table of another model or other genres, or a
        file that is not such a table.
    """

    def __init__(self, path: str | os.PathLike, *, classes: Sequence[str], model: str) -> None:
        self.path, self.classes, self.model = Path(path), tuple(classes), model
        self.format = self.path.suffix.lower()
        if self.format not in RESULT_FORMATS:
            raise ConfigError(f"out={self.path}: a results table ends in {', '.join(RESULT_FORMATS)}", parameter="out")
        if self.format == ".parquet":
            try:
                import pyarrow  # noqa: F401  # lazy: only Parquet tables need it
            except ImportError:
                raise ConfigError(f"out={self.path}: Parquet needs pyarrow (pip install pyarrow); or write .csv or "
                                  ".jsonl", parameter="out") from None
        if self.path.is_dir():
            raise ConfigError(f"out={self.path}: is a folder; name a table file", parameter="out")
        self._lines = self.path.with_name(f".{self.path.name}.rows.jsonl") if self.format == ".parquet" else self.path
        self.columns = ("path", "size", "mtime_ns", "model", "genre", "probability",
                        *(f"p_{name}" for name in self.classes), "chunks", *FLAG_COLUMNS, "error")
        #: a table written before the flags were recorded is resumed in its own columns
        self._legacy_columns = tuple(name for name in self.columns if name not in FLAG_COLUMNS)
        self.done: dict[str, tuple[int, int]] = {}
        for row in self._existing_rows():
            self.done[row.path] = (row.size, row.mtime_ns)
        try:
            self._descriptor = os.open(self._lines, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            fix = "create its folder first" if not self.path.parent.is_dir() else "choose another place"
            raise ConfigError(f"out={self.path}: cannot be written ({exc.strerror}); {fix}", parameter="out") from None
        if self.format == ".csv" and os.fstat(self._descriptor).st_size == 0:
            self._write(self._csv_line(self.columns))
        self._synced = time.monotonic()

    # --- reading what a previous run wrote -----------------------------------------------------------
    def _existing_rows(self) -> list[ResultRow]:
        rows = []
        self._parquet_before: list[ResultRow] = []  # what the Parquet file held: rewritten with the new rows
        if self.format == ".parquet" and self.path.is_file():
            self._parquet_before = self._parquet_rows()
            rows += self._parquet_before
        if self._lines.is_file():
            self._cut_torn_line(self._lines)
            rows += self._csv_rows() if self.format == ".csv" else self._jsonl_rows(self._lines)
        for row in rows:
            if row.model != self.model:
                raise ConfigError(f"out={self.path}: holds results of model {row.model}, not {self.model}; name "
                                  "another table, or classify with that model to resume", parameter="out")
        return rows

    @staticmethod
    def _cut_torn_line(path: Path) -> None:
        """Drop a last line that a killed run left without its newline."""
        with open(path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)

    def _csv_rows(self) -> list[ResultRow]:
        try:
            header, records = read_csv(self.path)
        except (OSError, csv.Error, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"out={self.path}: cannot be read as a results table ({exc}); name a new file",
                              parameter="out") from None
        if not header:
            return []
        self._adopt_columns(tuple(header))
        try:
            return [ResultRow(record["path"], int(record["size"]), int(record["mtime_ns"]), record["model"],
                              record["genre"] or None, None, int(record["chunks"] or 0), record["error"] or None,
                              _flag(record.get("unsure")), float(record["novelty"]) if record.get("novelty") else None,
                              _flag(record.get("unfamiliar")))
                    for record in records]
        except (ValueError, TypeError):
            raise ConfigError(f"out={self.path}: holds a damaged row (a size or time that is not a number); name "
                              "a new file", parameter="out") from None

    def _jsonl_rows(self, path: Path) -> list[ResultRow]:
        rows = []
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    record = json.loads(line)
                    rows.append(ResultRow(unescape_text(record["path"]), int(record["size"]), int(record["mtime_ns"]),
                                          record["model"], record["genre"], record["probabilities"],
                                          int(record["chunks"]), record["error"] and unescape_text(record["error"]),
                                          record.get("unsure"), record.get("novelty"), record.get("unfamiliar")))
                except (ValueError, KeyError, TypeError, UnicodeError):
                    raise ConfigError(f"out={self.path}: line {number} of {path.name} is not a results row; name "
                                      "a new file", parameter="out") from None
        return rows

    def _parquet_rows(self) -> list[ResultRow]:
        import pyarrow.parquet as parquet  # lazy: only Parquet tables need it

        try:
            table = parquet.read_table(self.path)
        except Exception as exc:  # pyarrow's errors carry no common type
            raise ConfigError(f"out={self.path}: cannot be read as Parquet ({exc}); name a new file",
                              parameter="out") from None
        self._adopt_columns(tuple(table.column_names))
        return [ResultRow(unescape_text(record["path"]), record["size"], record["mtime_ns"], record["model"],
                          record["genre"],
                          {name: record[f"p_{name}"] for name in self.classes} if record["genre"] else None,
                          record["chunks"], record["error"] and unescape_text(record["error"]),
                          record.get("unsure"), record.get("novelty"), record.get("unfamiliar"))
                for record in table.to_pylist()]

    def _adopt_columns(self, header: tuple) -> None:
        """Resume a table in its own columns: this version's, or those of a table written before the flags."""
        if header == self._legacy_columns:
            self.columns = header
        elif header != self.columns:
            raise ConfigError(f"out={self.path}: its columns are not this model's ({', '.join(header[:8])}...); "
                              "name another table", parameter="out")

    # --- writing ----------------------------------------------------------------------------------
    def add(self, row: ResultRow) -> None:
        """Append one row (one ``write`` call); the table is synced to disk every :data:`SYNC_SECONDS`."""
        if self.format == ".csv":
            line = self._csv_line(self._cells(row))
        else:
            record = dataclasses.asdict(row)
            record["path"], record["error"] = escape_text(row.path), row.error and escape_text(row.error)
            record["probability"] = None if row.probabilities is None else row.probabilities[row.genre]
            line = json.dumps(record, ensure_ascii=False) + "\n"
        self._write(line)
        self.done[row.path] = (row.size, row.mtime_ns)
        if time.monotonic() - self._synced > SYNC_SECONDS:
            os.fsync(self._descriptor)
            self._synced = time.monotonic()

    def _cells(self, row: ResultRow) -> list:
        """The row's cells in this table's columns (without the flags in a table written before them)."""
        probabilities = row.probabilities or {}
        flags = {"unsure": row.unsure, "novelty": row.novelty, "unfamiliar": row.unfamiliar}
        cells = {"path": row.path, "size": row.size, "mtime_ns": row.mtime_ns, "model": row.model,
                 "genre": row.genre or "",
                 "probability": "" if row.genre is None else round(probabilities[row.genre], 6),
                 **{f"p_{name}": round(probabilities[name], 6) if name in probabilities else ""
                    for name in self.classes},
                 "chunks": row.chunks, "error": row.error or "",
                 **{name: "" if value is None else value for name, value in flags.items()}}
        return [cells[name] for name in self.columns]

    @staticmethod
    def _csv_line(cells) -> str:
        buffer = io.StringIO(newline="")
        csv.writer(buffer).writerow([escape_text(cell) if isinstance(cell, str) else cell for cell in cells])
        return buffer.getvalue()

    def _write(self, text: str) -> None:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(self._descriptor, data):]

    def close(self) -> None:
        """Sync the table; a Parquet table is written now (atomically) from every row of every run."""
        os.fsync(self._descriptor)
        os.close(self._descriptor)
        if self.format == ".parquet":
            self._write_parquet()

    def _write_parquet(self) -> None:
        import pyarrow
        import pyarrow.parquet as parquet  # lazy: only Parquet tables need it

        rows = self._parquet_before + self._jsonl_rows(self._lines)
        # a run killed between writing the Parquet file and deleting the rows file holds each row twice
        rows = list({(row.path, row.size, row.mtime_ns): row for row in rows}.values())
        columns: dict[str, list] = {name: [] for name in self.columns}
        for row in rows:
            for name, cell in zip(self.columns, self._cells(row)):
                columns[name].append(None if cell == "" else escape_text(cell) if isinstance(cell, str) else cell)
        with atomic_file(self.path) as temporary:
            parquet.write_table(pyarrow.table(columns), temporary)
        self._lines.unlink()

    def __enter__(self) -> "ResultsTable":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _flag(cell: Optional[str]) -> Optional[bool]:
    """A CSV cell written from a bool (``True``/``False``), or empty."""
    return None if not cell else cell == "True"

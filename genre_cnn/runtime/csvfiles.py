"""CSV files that are valid UTF-8 whatever the file names in them.

Linux file names are bytes; Python reads one that is not UTF-8 (``café`` saved in Latin-1) with
its undecodable bytes as lone surrogates, which no UTF-8 file can hold. Every CSV that genre-cnn
writes therefore escapes its text cells, reversibly:

- an undecodable byte is written as ``\\xNN`` (two lower-case hex digits: ``caf\\xe9.mp3``);
- a backslash is written as two (``\\\\``), so that a name that really contains ``\\xe9`` stays
  itself;
- everything else (any valid Unicode) is written as it is.

:func:`read_csv` undoes it, so the package finds the file again; other tools (pandas, a
spreadsheet) read valid UTF-8 and see the escaped name.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["escape_text", "unescape_text", "write_csv", "read_csv"]

#: What :func:`escape_text` writes: a doubled backslash, or an undecodable byte (always 0x80 to 0xff).
_ESCAPED = re.compile(r"\\(\\|x[89a-f][0-9a-f])")


def escape_text(text: str) -> str:
    """``text`` with backslashes doubled and undecodable bytes (lone surrogates) as ``\\xNN``."""
    text = text.replace("\\", "\\\\")
    if text.isascii():
        return text
    try:
        raw = text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an undecodable byte: cannot come from a file name
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return raw.decode("utf-8", errors="backslashreplace")


def unescape_text(text: str) -> str:
    """The text that :func:`escape_text` escaped (``\\xNN`` back to the undecodable byte)."""
    if "\\" not in text:
        return text

    def replace(match: re.Match) -> str:
        escaped = match.group(1)
        return "\\" if escaped == "\\" else chr(0xDC00 + int(escaped[1:], 16))

    return _ESCAPED.sub(replace, text)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Write a CSV file (UTF-8) with every text cell escaped by :func:`escape_text`."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([escape_text(cell) if isinstance(cell, str) else cell for cell in row] for row in rows)


def read_csv(source: str | os.PathLike | bytes) -> tuple[list[str], list[dict]]:
    """The header and rows (as dicts) of a CSV written by :func:`write_csv`, text unescaped.

    ``source`` is a path, or the file's content already read. Files written by older versions
    with raw undecodable bytes are read too (a name of theirs holding a backslash followed by ``x8``
    to ``xff`` or by another backslash would be misread; such names are rare).

    Raises
    ------
    OSError
        The file cannot be read.
    csv.Error
        The file is not CSV.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    # newline="": line breaks inside quoted cells stay in the cell, and only \r and \n end a row
    reader = csv.DictReader(io.StringIO(data.decode("utf-8", errors="surrogateescape"), newline=""))
    rows = [{key: unescape_text(value) if isinstance(value, str) else value for key, value in row.items()}
            for row in reader]
    return list(reader.fieldnames or []), rows

"""Stream rows into a ``.npy`` file whose length is only known at the end, and read rows back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["NpyAppender", "RowReader"]

# The header is written once with room for the largest shape and rewritten with the real shape
# when the file is closed, so rows can be appended without knowing their number in advance and
# without holding them in memory. ``np.load(..., mmap_mode="r")`` reads the result as usual.
_HEADER_BYTES = 256
_MAGIC = b"\x93NUMPY\x01\x00"


class NpyAppender:
    """Append equally shaped float rows to a ``.npy`` file.

    Parameters
    ----------
    path : Path
        File to create (overwritten).
    row_shape : tuple of int
        Shape of one row, e.g. ``(n_mels, n_frames)``.
    dtype : {"float32", "float16"}
        How the rows are stored (they are converted).

    Examples
    --------
    >>> with NpyAppender(path, row_shape=(2, 3)) as out:  # doctest: +SKIP
    ...     out.append(np.zeros((5, 2, 3), np.float32))
    >>> np.load(path).shape  # doctest: +SKIP
    (5, 2, 3)
    """

    def __init__(self, path: Path, *, row_shape: tuple[int, ...], dtype: str = "float32") -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.row_shape = tuple(int(n) for n in row_shape)
        self.n_rows = 0
        self._file = open(self.path, "wb")
        self._write_header()

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` of shape ``(n, *row_shape)``."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not match row_shape={self.row_shape}")
        self._file.write(rows.tobytes())
        self.n_rows += len(rows)

    def close(self) -> None:
        """Write the final shape into the header and close the file."""
        if self._file.closed:
            return
        self._file.seek(0)
        self._write_header()
        self._file.close()

    def __enter__(self) -> "NpyAppender":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write_header(self) -> None:
        shape = (self.n_rows, *self.row_shape)
        text = repr({"descr": self.dtype.str, "fortran_order": False, "shape": shape})
        body_bytes = _HEADER_BYTES - len(_MAGIC) - 2
        body = text.ljust(body_bytes - 1).encode("latin1") + b"\n"
        if len(body) != body_bytes:
            raise ValueError(f"shape {shape} is too large for the .npy header")
        self._file.write(_MAGIC + body_bytes.to_bytes(2, "little") + body)


class RowReader:
    """Read chosen rows of an array (float16 ones as float32), without keeping them in memory afterwards.

    Rows of a ``.npy`` memory map (``np.load(..., mmap_mode="r")``) are read with ``os.pread``:
    unlike indexing the map, this leaves no mapped pages resident in the process, so memory does
    not grow with the dataset over an epoch. Any other array is simply indexed.

    Parameters
    ----------
    features : np.ndarray [shape=(n_rows, ...)]
    """

    def __init__(self, features: np.ndarray) -> None:
        self.features = features
        self.row_shape = features.shape[1:]
        filename = getattr(features, "filename", None)
        usable = filename is not None and features.dtype in (np.float32, np.float16) and hasattr(os, "pread")
        self._file = os.open(filename, os.O_RDONLY) if usable else None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The rows ``rows`` (any order), as a new array."""
        rows = np.asarray(rows, dtype=np.int64)
        stored = self.features.dtype
        out = np.empty((len(rows), *self.row_shape), dtype=np.float32 if stored == np.float16 else stored)
        if self._file is None:
            order = np.argsort(rows, kind="stable")
            out[order] = self.features[rows[order]]
            return out
        row_bytes = int(np.prod(self.row_shape)) * stored.itemsize
        for i, row in enumerate(rows):
            buffer = os.pread(self._file, row_bytes, self.features.offset + int(row) * row_bytes)
            out[i] = np.frombuffer(buffer, dtype=stored).reshape(self.row_shape)
        return out

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def __del__(self):
        self.close()

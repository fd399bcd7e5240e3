"""The manifest in DST: one row per source image, written as each result lands, read back to resume.

``manifest.csv`` (and ``manifest.parquet`` when pyarrow is installed): source, output, style, seed,
width, height, status (``done`` or ``failed``), error. Rows are appended as results land, so a run
killed at any point keeps every row of what it finished; the files are rewritten whole, sorted by
source, when the run ends.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from fastnst.io import atomic_path

COLUMNS = ("source", "output", "style", "seed", "width", "height", "status", "error")


class Manifest:
    """The rows of ``<dst>/manifest.csv`` by source path; :meth:`append` writes one through at once."""

    def __init__(self, dst: Path, fresh: bool = False):
        self.path = dst / "manifest.csv"
        self.rows: dict[str, dict] = {} if fresh else self._read()
        dst.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w" if fresh else "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, COLUMNS)
        if fresh or self._file.tell() == 0:
            self._writer.writeheader()

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        text = self.path.read_text(encoding="utf-8", errors="replace")
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a row cut short by a kill: dropped, its image is redone
        rows = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("source") and row.get("status") in ("done", "failed"):
                rows[row["source"]] = row
        return rows

    def done(self, source: str, dst: Path) -> bool:
        """Whether ``source``'s result is written: its row says done and its file is there."""
        row = self.rows.get(source)
        return bool(row and row["status"] == "done" and (dst / row["output"]).is_file())

    def append(self, row: dict) -> None:
        row = {key: row.get(key, "") for key in COLUMNS}
        self.rows[row["source"]] = row
        self._writer.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def failed(self) -> list[dict]:
        return [row for row in self.rows.values() if row["status"] == "failed"]

    def close(self, sources: set[str]) -> list[Path]:
        """Rewrite the manifest whole, one row per source of ``sources`` (the dataset as it is now; a file
        gone from SRC leaves it), sorted, as CSV, and Parquet where pyarrow is."""
        self._file.close()
        self.rows = {key: row for key, row in self.rows.items() if key in sources}
        rows = [self.rows[key] for key in sorted(self.rows)]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        written = [self.path]
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            return written
        columns = {key: [str(row[key]) for row in rows] for key in COLUMNS}
        with atomic_path(self.path.with_suffix(".parquet")) as tmp:
            pq.write_table(pa.table(columns), tmp)
        return [*written, self.path.with_suffix(".parquet")]

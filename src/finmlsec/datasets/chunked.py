"""Data too large to hold: read in chunks, split by row, and kept as a bounded, seeded, stratified
sample.

A spec's ``data.path`` may be a Parquet file, a directory of Parquet files (read in file-name
order) or a CSV; with Parquet, or with ``data.sample`` set, the data is never loaded whole:
:func:`sample_path` reads it in chunks of :data:`CHUNK_ROWS` rows (pyarrow record batches; CSV
through pandas' ``chunksize``) and keeps, per split, a sample of at most ``sample`` x the split's
share rows (train 50%, test 25%, population 25%). Memory is bounded by the chunk plus the
sample, whatever the number of rows.

How a row is placed depends only on the seed and the row's position in the data (its global
index; never on the chunk size or on the other rows), so the same data read whole, in chunks of
any size, from one file or from many, gives the same splits and the same sample:

- its split: a uniform number drawn for the row (SplitMix64 of the seed and the index, stream 0)
  below 0.5 is train, below 0.75 test, else population (the seeded 50/25/25 split of
  :func:`~finmlsec.datasets.splits.split_three`, by row instead of by shuffling the whole data);
- its rank in the sample: a second uniform number (stream 1); within each split and each class the
  rows with the smallest ranks are kept (bottom-k sampling), ``floor(k x n_class / n_split)`` of
  each class (at least one row of every class present), so the sample keeps the class shares of
  the split. A smaller sample is a subset of a larger one with the same seed: a model trained on
  the train rows of a large sample has the train rows of any smaller sample among its members.

Every row's label is checked against the classes; the sampled rows are validated against the
feature schema (a :class:`~finmlsec.errors.DataError` naming the file). The result records what
was done (:class:`SampleInfo`): the scan report states that its figures come from a sample, and
of how many rows.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": range(4000), "label": ["a"] * 3600 + ["b"] * 400})
    >>> kept = sample_frame(frame, "label", sample=1000, seed=0)
    >>> {k: len(v[0]) for k, v in kept.parts.items()}
    {'train': 500, 'test': 249, 'population': 249}
    >>> {k: int((v[1] == "b").sum()) for k, v in kept.parts.items()}
    {'train': 50, 'test': 26, 'population': 23}
    >>> chunked = sample_frame(frame, "label", sample=1000, seed=0, chunk_rows=300)
    >>> all(kept.parts[k][0].equals(chunked.parts[k][0]) for k in kept.parts)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.datasets._files import read_csv
from finmlsec.errors import DataError

#: the splits and their shares of the rows (and of the sample)
SPLITS = (("train", 0.5), ("test", 0.25), ("population", 0.25))
#: rows read at a time
CHUNK_ROWS = 200_000
#: rows kept when a spec reads Parquet and sets no ``data.sample``
DEFAULT_SAMPLE = 50_000

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def row_uniforms(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """A uniform number in [0, 1) for each global row ``index`` (SplitMix64 of the seed, the
    stream and the index): the same for a row however the data is chunked.

    Example:
        >>> a = row_uniforms(0, np.arange(10), 0)
        >>> bool(np.array_equal(a[5:], row_uniforms(0, np.arange(5, 10), 0)))
        True
    """
    with np.errstate(over="ignore"):
        z = (np.asarray(index, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
        z ^= np.uint64((int(seed) * 0x632BE59BD9B4E019 + int(stream) * 0xD6E8FEB86659FD93)
                       & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def is_parquet(path: Path) -> bool:
    """A Parquet file or a directory (of Parquet files)."""
    return path.is_dir() or path.suffix.lower() in (".parquet", ".pq")


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of ``path`` (itself, or a directory's ``*.parquet`` in name order)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and p.suffix.lower() in (".parquet", ".pq"))
        if not files:
            raise DataError(f"data.path {str(path)!r}: the directory holds no .parquet files")
        return files
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r}: file not found")
    return [path]


#: one chunk: its number of rows, its labels (as text) and a function giving some of its rows
Chunk = tuple[int, np.ndarray, Callable[[np.ndarray], pd.DataFrame]]


def iter_chunks(path: Path, label: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The data at ``path`` (Parquet file or directory, else CSV) in chunks; only the label
    column of a chunk is converted, rows are taken on demand."""
    if is_parquet(path):
        from finmlsec.extras import require

        pq = require("pyarrow.parquet", "reading Parquet data")
        for f in parquet_files(path):
            try:
                pf = pq.ParquetFile(f)
                if label not in pf.schema_arrow.names:
                    raise DataError(f"no label column {label!r}; columns are "
                                    f"{pf.schema_arrow.names}")
                for batch in pf.iter_batches(batch_size=chunk_rows):
                    labels = batch.column(label).to_pandas().astype(str).to_numpy()
                    yield batch.num_rows, labels, _taker(batch)
            except DataError as exc:
                raise DataError(f"data.path ({str(f)!r}): {exc}") from None
            except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
                raise DataError(f"data.path ({str(f)!r}): cannot read the Parquet file: "
                                f"{exc}") from None
        return
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r}: file not found")
    try:
        for frame in read_csv(path, chunksize=chunk_rows):
            if label not in frame.columns:
                raise DataError(f"data.path {str(path)!r}: no label column {label!r}; columns "
                                f"are {list(frame.columns)}")
            frame = frame.reset_index(drop=True)
            yield len(frame), frame[label].astype(str).to_numpy(), _frame_taker(frame)
    except (ValueError, OSError) as exc:
        raise DataError(f"data.path {str(path)!r}: cannot read the CSV: {exc}") from None


def _taker(batch: Any) -> Callable[[np.ndarray], pd.DataFrame]:
    def take(idx: np.ndarray) -> pd.DataFrame:
        return batch.take(idx).to_pandas()
    return take


def _frame_taker(frame: pd.DataFrame) -> Callable[[np.ndarray], pd.DataFrame]:
    def take(idx: np.ndarray) -> pd.DataFrame:
        return frame.iloc[idx].reset_index(drop=True)
    return take


@dataclass
class SampleInfo:
    """What was read and what was kept: ``rows`` read, per split the rows it holds
    (``split_rows``) and the rows kept (``kept``), per split and class the rows held
    (``class_rows``); ``sample``: the bound; ``sampled``: whether any split was cut."""

    rows: int
    sample: int
    seed: int
    chunk_rows: int
    split_rows: dict[str, int]
    kept: dict[str, int]
    class_rows: dict[str, dict[str, int]]
    source: str = ""

    @property
    def sampled(self) -> bool:
        return any(self.kept[s] < self.split_rows[s] for s in self.kept)

    def statement(self) -> str:
        """One sentence for reports: the figures come from a sample, of how many rows."""
        parts = ", ".join(f"{s} {self.kept[s]:,} of {self.split_rows[s]:,}" for s in self.kept)
        if not self.sampled:
            return (f"Data: all {self.rows:,} rows of {self.source or 'the data'} "
                    f"(seeded 50/25/25 split by row: {parts}).")
        return (f"Data: the attacks, defences and utility figures use a seeded, stratified "
                f"sample of {sum(self.kept.values()):,} of the {self.rows:,} rows of "
                f"{self.source or 'the data'} (read in chunks of {self.chunk_rows:,}; "
                f"seed {self.seed}; per split, kept of held: {parts}; class shares of each "
                "split kept); results are estimates from this sample.")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "sample": self.sample, "seed": self.seed,
                "chunk_rows": self.chunk_rows, "split_rows": self.split_rows,
                "kept": self.kept, "class_rows": self.class_rows, "sampled": self.sampled,
                "source": self.source, "statement": self.statement()}


@dataclass
class _Kept:
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    frames: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class Sampled:
    """The sample: per split, ``(frame, labels as text)`` in row order; and its :class:`SampleInfo`."""

    parts: dict[str, tuple[pd.DataFrame, np.ndarray]]
    info: SampleInfo


class StratifiedSampler:
    """Bottom-k sampling per split and class over chunks (see the module docstring); holds at
    most ``quota(split)`` rows per split and class."""

    def __init__(self, sample: int, seed: int, label: str) -> None:
        if sample < len(SPLITS):
            raise DataError(f"data.sample must be at least {len(SPLITS)}; got {sample}")
        self.sample, self.seed, self.label = int(sample), int(seed), label
        self.quota = {s: max(1, int(sample * share)) for s, share in SPLITS}
        self.kept: dict[tuple[str, str], _Kept] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.rows = 0

    def add(self, n: int, labels: np.ndarray, take: Callable[[np.ndarray], pd.DataFrame]) -> None:
        index = np.arange(self.rows, self.rows + n, dtype=np.int64)
        self.rows += n
        u = row_uniforms(self.seed, index, 0)
        split = np.searchsorted(np.cumsum([share for _, share in SPLITS])[:-1], u, side="right")
        rank = row_uniforms(self.seed, index, 1)
        for si, (s, _) in enumerate(SPLITS):
            in_split = split == si
            for lab in pd.unique(labels[in_split]):
                mask = in_split & (labels == lab)
                key = (s, str(lab))
                self.counts[key] = self.counts.get(key, 0) + int(mask.sum())
                kept = self.kept.setdefault(key, _Kept())
                k = self.quota[s]
                pos = np.flatnonzero(mask)
                if len(kept.keys) >= k:  # only ranks below the current k-th can enter
                    pos = pos[rank[pos] < np.partition(kept.keys, k - 1)[k - 1]]
                if not len(pos):
                    continue
                kept.frames.append(take(pos))
                kept.keys = np.r_[kept.keys, rank[pos]]
                kept.index = np.r_[kept.index, index[pos]]
                if len(kept.keys) > 2 * k:
                    self._trim(kept, k)

    @staticmethod
    def _trim(kept: _Kept, k: int) -> None:
        frame = pd.concat(kept.frames, ignore_index=True)
        order = np.argsort(kept.keys, kind="stable")[:k]
        kept.frames = [frame.iloc[order].reset_index(drop=True)]
        kept.keys, kept.index = kept.keys[order], kept.index[order]

    def result(self, source: str = "", chunk_rows: int = CHUNK_ROWS) -> Sampled:
        parts: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
        split_rows, kept_rows, class_rows = {}, {}, {}
        for s, _ in SPLITS:
            labs = sorted(lab for (sp, lab) in self.counts if sp == s)
            n = sum(self.counts[(s, lab)] for lab in labs)
            split_rows[s] = n
            class_rows[s] = {lab: self.counts[(s, lab)] for lab in labs}
            frames, index = [], []
            for lab in labs:
                kept = self.kept[(s, lab)]
                n_c = self.counts[(s, lab)]
                k_c = n_c if n <= self.quota[s] else max(1, self.quota[s] * n_c // n)
                self._trim(kept, min(k_c, len(kept.keys)))
                frames += kept.frames
                index.append(kept.index)
            if not frames:
                raise DataError(f"the {s} split is empty: the data has {self.rows} row(s); "
                                "give more rows")
            frame = pd.concat(frames, ignore_index=True)
            order = np.argsort(np.concatenate(index), kind="stable")  # back to row order
            frame = frame.iloc[order].reset_index(drop=True)
            labels = frame[self.label].astype(str).to_numpy()
            parts[s] = (frame.drop(columns=[self.label]), labels)
            kept_rows[s] = len(frame)
        info = SampleInfo(rows=self.rows, sample=self.sample, seed=self.seed,
                          chunk_rows=chunk_rows, split_rows=split_rows, kept=kept_rows,
                          class_rows=class_rows, source=source)
        return Sampled(parts, info)


def sample_frame(frame: pd.DataFrame, label: str, *, sample: int, seed: int = 0,
                 chunk_rows: int | None = None) -> Sampled:
    """:func:`sample_chunks` of a frame in memory (in chunks of ``chunk_rows``; None: one)."""
    step = chunk_rows or max(len(frame), 1)
    sampler = StratifiedSampler(sample, seed, label)
    for start in range(0, len(frame), step):
        part = frame.iloc[start:start + step].reset_index(drop=True)
        sampler.add(len(part), part[label].astype(str).to_numpy(), _frame_taker(part))
    return sampler.result(source="a data frame", chunk_rows=step)


def sample_path(path: Path, label: str, *, sample: int, seed: int = 0,
                chunk_rows: int = CHUNK_ROWS,
                classes: tuple[str, ...] | None = None) -> Sampled:
    """Read ``path`` in chunks and keep the bounded, stratified sample; every label is checked
    against ``classes`` (when given)."""
    sampler = StratifiedSampler(sample, seed, label)
    allowed = None if classes is None else {str(c) for c in classes}
    for n, labels, take in iter_chunks(path, label, chunk_rows):
        if allowed is not None:
            bad = sorted(set(pd.unique(labels).tolist()) - allowed)
            if bad:
                raise DataError(f"data.path ({str(path)!r}): label(s) {bad[:5]} are not among "
                                f"the schema's classes {sorted(allowed)}")
        sampler.add(n, labels, take)
    if sampler.rows == 0:
        raise DataError(f"data.path ({str(path)!r}): no rows")
    return sampler.result(source=path.name, chunk_rows=chunk_rows)

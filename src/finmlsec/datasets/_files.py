"""Where the vendored data files live (inside the installed package, read offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from finmlsec.errors import DataError


def data_file(name: str) -> Path:
    """Path of a file shipped in ``finmlsec/datasets/data/``; a clear error if it is missing."""
    path = Path(str(resources.files("finmlsec.datasets") / "data" / name))
    if not path.is_file():
        raise DataError(
            f"the vendored data file {name!r} is missing from {path.parent}; reinstall finmlsec "
            "(the file is part of the package and is never downloaded)"
        )
    return path


#: The separators a bank's export uses; the one of a file is read off its header line.
SEPARATORS = (",", ";", "\t", "|")


def csv_separator(path: Path) -> str:
    """The separator of the CSV at ``path``: of ``, ; tab |``, the one its header line has most
    of outside quotes (``,`` when it has none, a one-column file). European exports use ``;``."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        header = fh.readline()
    bare = "".join(header.split('"')[::2])  # outside double quotes
    counts = {s: bare.count(s) for s in SEPARATORS}
    best = max(SEPARATORS, key=lambda s: counts[s])
    return best if counts[best] else ","


def read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    """``pandas.read_csv`` of ``path`` with its own separator (:func:`csv_separator`). A file
    that is not UTF-8 (a Shift_JIS or Windows-1252 export) raises ValueError saying how to
    convert it; its encoding is not guessed."""
    import codecs

    import pandas as pd

    with open(path, "rb") as fh:  # the first megabyte: where an export's encoding shows
        head = fh.read(1 << 20)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"the file is not UTF-8 text (byte {head[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8, e.g. for a Shift_JIS export "
            f"`iconv -f CP932 -t UTF-8 {path.name} > utf8.csv`, for Windows-1252 "
            "`iconv -f CP1252 -t UTF-8 ...`") from None
    return pd.read_csv(path, sep=csv_separator(path), **kwargs)

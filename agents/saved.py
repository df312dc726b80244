"""The files of a saved agent: read with errors that name the file, written whole or not at all.

A model folder written by ``train.py`` holds the agent's weights and a JSON description; a
missing file raises :class:`FileNotFoundError`, an unreadable or incomplete one a
:class:`ValueError`, both naming the file (``train.py evaluate`` reports either as a usage
error instead of a traceback from deep inside torch, zipfile or pickle). Folders and pointer
files are replaced by renames (:func:`replace_folder`, :func:`write_json`), so that an
interrupted write never leaves half a model that a later run trusts.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_RETRAIN = "train the run again or restore the file"


def required_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else ``FileNotFoundError`` naming it as ``what``.

    Examples:
        >>> required_file(Path("no/such/policy.pt"), "deep-hedging weights")
        Traceback (most recent call last):
        ...
        FileNotFoundError: deep-hedging weights 'no/such/policy.pt' is missing: train the run again or restore the file
    """  # noqa: E501
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} is missing: {_RETRAIN}")
    return path


def read_json(path: Path, what: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object of ``path``, holding at least ``keys``.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is no JSON object, or lacks some of ``keys``.
    """
    required_file(path, what)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON ({error}): {_RETRAIN}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{what} {str(path)!r} must hold a JSON object, got {type(data).__name__}: {_RETRAIN}"
        )
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"{what} {str(path)!r} lacks the key(s) {missing}: {_RETRAIN}")
    return data


@contextmanager
def loading(path: Path, what: str) -> Iterator[None]:
    """Turn any failure to load ``path`` (corrupt or foreign content) into a ``ValueError``.

    A missing file still raises :class:`FileNotFoundError` (check it with
    :func:`required_file` first for a message that names it as ``what``).
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as error:
        lines = str(error).strip().splitlines()  # torch's and pickle's run over many lines
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise ValueError(
            f"{what} {str(path)!r} cannot be loaded ({reason}); it is corrupt or was not "
            f"written by hedgearena: {_RETRAIN}"
        ) from error


def replace_folder(folder: Path, write: Callable[[Path], Any]) -> Path:
    """Fill ``folder`` anew with ``write(partial)``, so that an interruption leaves it whole.

    ``write`` fills a fresh sibling folder (``.<name>.partial``), which then takes the place of
    ``folder`` by two renames: a write cut short (Ctrl-C, a crash, a full disk) leaves
    ``folder`` as it was, never a new model beside an old normaliser or a truncated file;
    between the two renames it is missing, never half written.
    """
    partial = folder.with_name(f".{folder.name}.partial")
    old = folder.with_name(f".{folder.name}.old")
    for stale in (partial, old):
        shutil.rmtree(stale, ignore_errors=True)
    partial.mkdir(parents=True)
    write(partial)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` whole or not at all (a temporary file renamed)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)
    return path

"""Files: one atomic writer for everything attrwidgets saves, the CSV cell guard, and the guard every reader
wears (only an AttrWidgetsError comes out of a reader, whatever bytes it was given).

Atomic: the data goes to a temporary name beside the target, then os.replace renames it over the target (atomic
on one file system), so a crash, an interrupt or a full disk mid-write leaves the old file or none, never a
truncated one that a later load would have to reject. Not tempfile.mkstemp: its 0600 mode would survive the
rename and make the saved result private to its writer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from attrwidgets.errors import AttrWidgetsError

# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV injection"); token text and
# prompts are untrusted, so such cells get a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def open_text_atomic(path: str | os.PathLike) -> Iterator:
    """A text file (UTF-8, newline="" for the csv module) that appears at `path` only once fully written."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        yield f


def csv_cell(text: str, raw: bool = False) -> str:
    """Token text or a prompt as a CSV cell: a leading apostrophe keeps a would-be formula literal (raw=True: as
    is, for tools that read the file as data rather than open it in a spreadsheet)."""
    return text if raw or not text.startswith(FORMULA_STARTS) else "'" + text


# What decoding untrusted bytes can raise, from our code or the parsers below it (json, yaml, safetensors).
# MemoryError is not here: readers check declared sizes against the file (safetensors does) before allocating.
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
              UnicodeError, EOFError, OSError)
_PARSER_MODULES = ("safetensors", "yaml")


def file_reader(what: str, fix: str) -> Callable:
    """Decorates a loader `fn(path, ...)`: a missing path, a folder where a file belongs, or any malformed content
    becomes an AttrWidgetsError that names the path, what was expected and `fix`. The loader's own
    AttrWidgetsErrors (precise ones) pass through unchanged."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def read(path, *args, **kwargs):
            try:
                return fn(path, *args, **kwargs)
            except AttrWidgetsError:
                raise
            except FileNotFoundError as exc:
                raise AttrWidgetsError(f"Cannot read {path}: no such file ({exc.filename}). {fix}.") from None
            except IsADirectoryError as exc:
                raise AttrWidgetsError(f"Cannot read {path}: {exc.filename} is a folder, not {what}. {fix}.") from None
            except Exception as exc:
                if not isinstance(exc, _MALFORMED) and not type(exc).__module__.startswith(_PARSER_MODULES):
                    raise  # a bug of ours, not a bad file: let it show as one
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                raise AttrWidgetsError(f"Cannot read {path} as {what}: the file is malformed "
                                       f"({type(exc).__name__}: {detail}). {fix}.") from None

        return read

    return decorate

"""Reading a billing file: its digest, its header and its records with their line numbers."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from typing import IO

from customers.billing_import.rules import COLUMNS


class ImportFileError(Exception):
    """The file as a whole cannot be read (encoding, header)."""


def digest_of(data: IO[bytes]) -> str:
    """SHA-256 of the file's bytes: the same file loaded twice is recognised before it is parsed."""
    digest = hashlib.sha256()
    while chunk := data.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _lines(stream: IO[str]) -> Iterator[str]:
    """The file's lines; a NUL character (which no database text holds) means a damaged or
    binary file, refused whole with its line rather than failing half-way through loading."""
    for number, text in enumerate(stream, start=1):
        if "\x00" in text:
            raise ImportFileError(
                f"line {number}: contains a NUL character (the file is damaged or not text)"
            )
        yield text


def records(stream: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, values) of every non-blank record after a valid header.

    The line number is the file's own (where the record ends), what an editor shows the operator.
    """
    reader = csv.reader(_lines(stream))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty") from None
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"the file is not UTF-8 ({exc.reason})") from None
    header = [name.strip().lstrip("\ufeff").lower() for name in header]
    if tuple(header) != COLUMNS:
        raise ImportFileError(
            "the header must be exactly: " + ",".join(COLUMNS) + f" (found: {','.join(header)})"
        )
    line = 1
    try:
        for values in reader:
            line = reader.line_num
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            yield line, values
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"line {line + 1}: not UTF-8 ({exc.reason})") from None
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: {exc}") from None

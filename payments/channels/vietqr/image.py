"""VietQR for a payment: the payload with the utility's account, and its PNG and SVG images.

A payment's payload never changes, so its QR matrix and both images are computed once per process
and kept (`lru_cache`). Even the first render is cheap: the `qrcode` library encodes the data
(modes, Reed-Solomon), but the layout and the choice among the eight mask patterns (most of the
library's time: it lays out the whole symbol nine times) are done here on bit rows, with the
library's own placement and penalty rules. The result is exactly the symbol `qrcode` produces
(the tests compare them), in a fraction of the time.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import qrcode
from django.conf import settings
from PIL import Image
from qrcode import util as qr_util
from qrcode.constants import ERROR_CORRECT_M

from common.text import strip_accents
from payments import references, selectors
from payments.channels.vietqr.payload import VietQR, build_payload
from payments.models import Payment

# Medium error correction (15%) survives a scratched or glared phone screen, and keeps a
# 120-character payload at version 5 (37x37 modules), large modules on a small screen.
ERROR_CORRECTION = ERROR_CORRECT_M
# The quiet zone the QR standard asks for, in modules.
BORDER = 4
# Pixels per module of the PNG: 360 px or more, sharp when saved and scanned from the gallery.
# Eight, so that a module is exactly one byte of a 1-bit image (see render_png).
PNG_BOX = 8
# Cached renders per process: a busy minute of checkouts; each entry is a few kilobytes.
CACHE_SIZE = 1024


def payment_amount_due(payment: Payment) -> int:
    """What is still to transfer: the amount, less what arrived short for it."""
    return payment.amount - selectors.payment_received_short(payment=payment)


def payment_qr_payload(payment: Payment) -> str:
    """A dynamic QR: the amount still due, and the reference as the transfer note (62/08)."""
    return _payload(
        settings.VIETQR_BIN,
        settings.VIETQR_ACCOUNT,
        payment_amount_due(payment),
        payment.reference,
    )


def bill_qr_payload(*, bill_id: int, amount: int) -> str:
    """A paper bill's QR: the bill's amount and the bill's own reference as the transfer note,
    the same on every print; a transfer from it pays the bill (`services.bill_payments_open`)."""
    return _payload(
        settings.VIETQR_BIN, settings.VIETQR_ACCOUNT, amount, references.bill_reference(bill_id)
    )


@lru_cache(maxsize=CACHE_SIZE)
def _payload(bank_bin: str, account: str, amount: int, reference: str) -> str:
    return build_payload(
        VietQR(bank_bin=bank_bin, account=account, amount=amount, purpose=reference)
    )


def account_name() -> str:
    # Banking apps show the beneficiary in upper-case ASCII; so do we, to match what they see.
    return strip_accents(settings.VIETQR_ACCOUNT_NAME).upper()


# --- The QR matrix --------------------------------------------------------------------------------
Matrix = tuple[str, ...]  # one string per row, "1" for a dark module, without the quiet zone

_RUN = re.compile(r"0{5,}|1{5,}")
_FINDER_LIKE = re.compile(r"(?=10111010000|00001011101)")
_DARK_RUN = re.compile(r"1+")


_BITS = bytes.maketrans(b"\x00\x01", b"01")


def _row_int(row: list[bool | None]) -> int:
    """A row of modules as an int, bit `col` set for a dark module (None counts as light)."""
    return int(bytes(bool(dark) for dark in reversed(row)).translate(_BITS), 2)


@dataclass(frozen=True)
class _Layout:
    """What does not depend on the data, for one symbol version, as bit rows."""

    tested: list[int]  # function modules as qrcode's mask test sees them (format info light)
    final: list[list[int]]  # function modules with the real format information, per mask
    flips: list[list[int]]  # the data modules each mask pattern inverts
    order: list[tuple[int, int]]  # where data bit i goes: (row, column bit)


@lru_cache(maxsize=64)
def _layout(version: int, error_correction: int) -> _Layout:
    probe = qrcode.QRCode(version=version, error_correction=error_correction)
    probe.modules_count = size = version * 4 + 17

    def function_rows(test: bool, pattern: int) -> list[list[bool | None]]:
        # The same steps as qrcode's makeImpl, without placing any data.
        probe.modules = [[None] * size for _ in range(size)]
        probe.setup_position_probe_pattern(0, 0)
        probe.setup_position_probe_pattern(size - 7, 0)
        probe.setup_position_probe_pattern(0, size - 7)
        probe.setup_position_adjust_pattern()
        probe.setup_timing_pattern()
        probe.setup_type_info(test, pattern)
        if version >= 7:
            probe.setup_type_number(test)
        return probe.modules

    blank = function_rows(True, 0)
    is_data = [[value is None for value in row] for row in blank]
    flips = []
    for pattern in range(8):
        flip = qr_util.mask_func(pattern)
        flips.append(
            [sum(1 << c for c in range(size) if is_data[r][c] and flip(r, c)) for r in range(size)]
        )
    # qrcode's map_data walk: two columns at a time from the right, up then down, skipping the
    # vertical timing pattern.
    order: list[tuple[int, int]] = []
    row, step = size - 1, -1
    for right in range(size - 1, 0, -2):
        col = right - 1 if right <= 6 else right
        while 0 <= row < size:
            order.extend((row, 1 << c) for c in (col, col - 1) if is_data[row][c])
            row += step
        row -= step
        step = -step
    return _Layout(
        tested=[_row_int(row) for row in blank],
        final=[[_row_int(row) for row in function_rows(False, p)] for p in range(8)],
        flips=flips,
        order=order,
    )


def _penalty(rows: list[int], size: int) -> int:
    """qrcode's `util.lost_point`, computed on bit rows (N1 runs, N2 blocks, N3 finder-like
    patterns, N4 balance); equal to it for every matrix (the tests check that)."""
    texts = [format(row, f"0{size}b") for row in rows]  # column order reversed: harmless,
    columns = ["".join(column) for column in zip(*texts, strict=True)]  # every rule is symmetric
    # One string, lines apart by a character no rule matches: two regex passes in C in all.
    text = "2".join(texts + columns)
    runs = _RUN.findall(text)
    points = sum(map(len, runs)) - 2 * len(runs) + 40 * len(_FINDER_LIKE.findall(text))
    full = (1 << size) - 1
    for upper, lower in pairwise(rows):
        same_vertically = ~(upper ^ lower) & full
        same_horizontally = ~(upper ^ (upper >> 1))
        blocks = same_vertically & (same_vertically >> 1) & same_horizontally & (full >> 1)
        points += 3 * blocks.bit_count()
    dark = sum(row.bit_count() for row in rows)
    percent = float(dark) / (size**2)
    return int(abs(percent * 100 - 50) / 5) * 10 + points


@lru_cache(maxsize=CACHE_SIZE)
def qr_matrix(payload: str) -> Matrix:
    """The QR symbol of `payload`, identical to `qrcode.QRCode(...).make(fit=True)`."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION)
    code.add_data(payload)
    version = code.best_fit()
    data = qr_util.create_data(version, ERROR_CORRECTION, code.data_list)
    layout = _layout(version, ERROR_CORRECTION)
    size = version * 4 + 17
    # The data bits, unmasked, placed where qrcode's map_data puts them.
    plain = [0] * size
    order = layout.order
    for index, byte in enumerate(data):
        if byte:
            base = index * 8
            for bit in range(8):
                if byte & (0x80 >> bit):
                    row, column = order[base + bit]
                    plain[row] |= column
    best, best_points = 0, 0
    for pattern in range(8):
        flips = layout.flips[pattern]
        rows = [layout.tested[r] | (plain[r] ^ flips[r]) for r in range(size)]
        points = _penalty(rows, size)
        if pattern == 0 or points < best_points:  # qrcode keeps the first of equals too
            best, best_points = pattern, points
    final, flips = layout.final[best], layout.flips[best]
    return tuple(format(final[r] | (plain[r] ^ flips[r]), f"0{size}b")[::-1] for r in range(size))


# --- Images ---------------------------------------------------------------------------------------
# A 1-bit image packs 8 pixels in a byte, so with 8 pixels per module each module is one byte.
_TO_PACKED = bytes.maketrans(b"01", b"\xff\x00")  # PIL's mode "1": a set bit is white


@lru_cache(maxsize=CACHE_SIZE)
def render_png(payload: str) -> bytes:
    """A black-on-white PNG with the quiet zone, PNG_BOX pixels per module, 1 bit per pixel."""
    matrix = qr_matrix(payload)
    size = len(matrix) + 2 * BORDER
    margin = "0" * BORDER
    blank = ("0" * size).encode("ascii").translate(_TO_PACKED) * PNG_BOX
    rows = [
        (margin + row + margin).encode("ascii").translate(_TO_PACKED) * PNG_BOX for row in matrix
    ]
    image = Image.frombytes(
        "1", (size * PNG_BOX, size * PNG_BOX), blank * BORDER + b"".join(rows) + blank * BORDER
    )
    buffer = io.BytesIO()
    # Level 1: a third of the time of the default for a file of 1 kB instead of 0.7 kB.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@lru_cache(maxsize=CACHE_SIZE)
def render_svg(payload: str) -> bytes:
    """A compact SVG: one path of horizontal runs on a white square, scaled by the page."""
    matrix = qr_matrix(payload)
    size = len(matrix) + 2 * BORDER
    path = []
    for y, row in enumerate(matrix, start=BORDER):
        for run in _DARK_RUN.finditer(row):
            x = run.start() + BORDER
            path.append(f"M{x} {y}h{run.end() - run.start()}v1H{x}z")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {size} {size}" width="{size * PNG_BOX}" height="{size * PNG_BOX}" '
        'shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(path)}"/></svg>'
    ).encode("ascii")

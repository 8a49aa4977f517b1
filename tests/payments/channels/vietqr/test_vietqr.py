"""VietQR payloads (docs/protocols.md §1), and the QR images of a payment."""

from __future__ import annotations

import io
import random
import xml.etree.ElementTree as ET

import pytest
import qrcode
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from qrcode import util as qr_util
from qrcode.constants import ERROR_CORRECT_M

from payments import services
from payments.channels.vietqr import image as vietqr
from payments.channels.vietqr.payload import (
    PayloadError,
    VietQR,
    build_payload,
    crc16_ccitt_false,
    parse_payload,
)
from tests.factories import customer_with_bills

VECTORS = [
    (
        VietQR(bank_bin="970403", account="0011012345678"),
        "00020101021138570010A00000072701270006970403011300110123456780208QRIBFTTA53037045802VN63049E6F",
    ),
    (
        VietQR(bank_bin="970403", account="9704031101234567", to_card=True),
        "00020101021138600010A00000072701300006970403011697040311012345670208QRIBFTTC53037045802VN63044F52",
    ),
    (
        VietQR(
            bank_bin="970403",
            account="0011012345678",
            amount=180000,
            bill_number="NPS6869",
            purpose="thanh toan don hang",
        ),
        "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA530370454061800005802VN62340107NPS68690819thanh toan don hang63042E2E",
    ),
    (
        VietQR(bank_bin="970416", account="257678859", amount=1000, purpose="Chuyen tien"),
        "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN62150811Chuyen tien6304BBB8",
    ),
]  # fmt: skip


def test_the_crc_has_the_standard_check_value():
    assert f"{crc16_ccitt_false(b'123456789'):04X}" == "29B1"


@pytest.mark.parametrize(("qr", "payload"), VECTORS)
def test_it_builds_every_public_vector(qr, payload):
    assert build_payload(qr) == payload


@pytest.mark.parametrize(("qr", "payload"), VECTORS)
def test_it_parses_every_public_vector(qr, payload):
    assert parse_payload(payload) == qr


@pytest.mark.parametrize(("_qr", "payload"), VECTORS)
def test_every_single_character_change_of_a_vector_is_refused(_qr, payload):
    alphabet = sorted(set(payload) | set("0123456789ABCDEFabcdef .-é\n"))
    for position in range(len(payload)):
        for replacement in alphabet:
            if replacement == payload[position]:
                continue
            changed = payload[:position] + replacement + payload[position + 1 :]
            with pytest.raises(PayloadError):
                parse_payload(changed)


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "6304",
        "0002016304ABCD",
        VECTORS[0][1][:-4] + VECTORS[0][1][-4:].lower(),  # the spec says upper-case hex
        VECTORS[0][1][:-8],  # no CRC field
        "not a payload at all",
    ],
)
def test_it_refuses_malformed_payloads(payload):
    with pytest.raises(PayloadError):
        parse_payload(payload)


@pytest.mark.parametrize(
    "fields",
    [
        {"bank_bin": "97043", "account": "1"},
        {"bank_bin": "970436", "account": ""},
        {"bank_bin": "970436", "account": "12345678901234567890"},
        {"bank_bin": "970436", "account": "0011-004"},
        {"bank_bin": "970436", "account": "1", "amount": 0},
        {"bank_bin": "970436", "account": "1", "amount": 10**13},
        {"bank_bin": "970436", "account": "1", "purpose": "Thanh toán"},
        {"bank_bin": "970436", "account": "1", "purpose": "x" * 26},
    ],
)
def test_it_refuses_fields_a_banking_app_would_not_read(fields):
    with pytest.raises(PayloadError):
        VietQR(**fields)


# --- Properties -----------------------------------------------------------------------------
ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126))
qr_codes = st.builds(
    VietQR,
    bank_bin=st.from_regex(r"\A97[0-9]{4}\Z"),
    account=st.from_regex(r"\A[0-9A-Z]{1,19}\Z"),
    amount=st.none() | st.integers(min_value=1, max_value=10**13 - 1),
    purpose=ascii_text.filter(lambda s: len(s) <= 25),
    bill_number=ascii_text.filter(lambda s: len(s) <= 25),
    merchant_name=ascii_text.filter(lambda s: len(s) <= 25),
    merchant_city=ascii_text.filter(lambda s: len(s) <= 15),
    to_card=st.booleans(),
)


@given(qr=qr_codes)
def test_build_then_parse_is_the_identity(qr):
    assert parse_payload(build_payload(qr)) == qr


@settings(max_examples=300)
@given(qr=qr_codes, data=st.data())
def test_any_single_character_change_is_caught_by_the_crc_or_the_parser(qr, data):
    payload = build_payload(qr)
    position = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    replacement = data.draw(st.characters().filter(lambda ch: ch != payload[position]))
    with pytest.raises(PayloadError):
        parse_payload(payload[:position] + replacement + payload[position + 1 :])


# --- A payment's QR ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_payment_qr_carries_the_utility_account_the_exact_amount_and_the_reference(settings):
    settings.VIETQR_BIN, settings.VIETQR_ACCOUNT = "970436", "0011004321987"
    customer, _ = customer_with_bills(unpaid=2, amounts=[452_160, 300_000])
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    parsed = parse_payload(vietqr.payment_qr_payload(payment))
    assert parsed == VietQR(
        bank_bin="970436", account="0011004321987", amount=752_160, purpose=payment.reference
    )
    assert len(parsed.purpose) <= 19  # VietQR's own API limit for the note


def test_the_account_name_is_shown_as_banking_apps_show_it(settings):
    settings.VIETQR_ACCOUNT_NAME = "Công ty Điện lực Hà Tĩnh"
    assert vietqr.account_name() == "CONG TY DIEN LUC HA TINH"


def _library_matrix(payload: str) -> tuple[str, ...]:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(payload)
    code.make(fit=True)
    return tuple("".join("1" if dark else "0" for dark in row) for row in code.modules)


@pytest.mark.parametrize("length", [60, 120, 124, 150, 250])
def test_the_matrix_is_exactly_the_one_qrcode_makes(length):
    rng = random.Random(length)
    for _ in range(5):
        payload = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ .") for _ in range(length))
        assert vietqr.qr_matrix(payload) == _library_matrix(payload)


@given(
    size=st.sampled_from([21, 25, 37, 45]),
    seed=st.integers(min_value=0, max_value=2**32),
    density=st.floats(min_value=0.05, max_value=0.95),
)
def test_the_mask_penalty_equals_the_library_penalty_for_any_matrix(size, seed, density):
    rng = random.Random(seed)
    modules = [[rng.random() < density for _ in range(size)] for _ in range(size)]
    rows = [sum(1 << col for col, dark in enumerate(row) if dark) for row in modules]
    assert vietqr._penalty(rows, size) == qr_util.lost_point(modules)


def test_the_png_shows_the_matrix_with_a_quiet_zone():
    payload = VECTORS[2][1]
    matrix = vietqr.qr_matrix(payload)
    image = Image.open(io.BytesIO(vietqr.render_png(payload)))
    modules = len(matrix) + 2 * vietqr.BORDER
    assert image.size == (modules * vietqr.PNG_BOX, modules * vietqr.PNG_BOX)
    pixels = image.convert("L").load()
    for row in range(modules):
        for col in range(modules):
            x = col * vietqr.PNG_BOX + vietqr.PNG_BOX // 2
            y = row * vietqr.PNG_BOX + vietqr.PNG_BOX // 2
            inside = vietqr.BORDER <= row < modules - vietqr.BORDER and (
                vietqr.BORDER <= col < modules - vietqr.BORDER
            )
            dark = inside and matrix[row - vietqr.BORDER][col - vietqr.BORDER] == "1"
            assert (pixels[x, y] == 0) == dark, (row, col)


def test_the_svg_is_one_compact_path_covering_exactly_the_dark_modules():
    payload = VECTORS[3][1]
    matrix = vietqr.qr_matrix(payload)
    svg = vietqr.render_svg(payload)
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    namespace = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{namespace}svg"
    modules = len(matrix) + 2 * vietqr.BORDER
    assert root.get("viewBox") == f"0 0 {modules} {modules}"
    paths = root.findall(f"{namespace}path")
    assert len(paths) == 1
    dark = set()
    for command in paths[0].get("d").split("M")[1:]:
        start, rest = command.split("h")
        x, y = (int(v) for v in start.split())
        width = int(rest.split("v")[0])
        dark.update((y, x + i) for i in range(width))
    expected = {
        (r + vietqr.BORDER, c + vietqr.BORDER)
        for r, row in enumerate(matrix)
        for c, ch in enumerate(row)
        if ch == "1"
    }
    assert dark == expected
    assert len(svg) < 8000


def test_renders_are_kept_so_a_second_request_costs_nothing():
    payload = build_payload(VietQR(bank_bin="970436", account="1", amount=5, purpose="X"))
    assert vietqr.render_png(payload) is vietqr.render_png(payload)
    assert vietqr.render_svg(payload) is vietqr.render_svg(payload)

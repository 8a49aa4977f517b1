"""The sandbox bank's own protocol code: the public vectors, and agreement with the portal's."""

from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.channels.vietqr import payload as vietqr
from payments.channels.vnpay import protocol as vnpay
from sandbox import protocol
from tests.payments.channels.vnpay.test_vnpay import (
    VECTOR_HASH,
    VECTOR_PARAMS,
    VECTOR_SECRET,
    VECTOR_STRING,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_sandbox_reproduces_the_signature_vector_on_its_own():
    assert protocol.signing_string(VECTOR_PARAMS) == VECTOR_STRING
    assert protocol.secure_hash(VECTOR_PARAMS, VECTOR_SECRET) == VECTOR_HASH
    assert protocol.hash_matches({**VECTOR_PARAMS, "vnp_SecureHash": VECTOR_HASH}, VECTOR_SECRET)
    assert not protocol.hash_matches(
        {**VECTOR_PARAMS, "vnp_Amount": "1", "vnp_SecureHash": VECTOR_HASH}, VECTOR_SECRET
    )


field_names = st.from_regex(r"vnp_[A-Za-z]{1,12}", fullmatch=True).filter(
    lambda name: name not in ("vnp_SecureHash", "vnp_SecureHashType")
)
field_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40
)


@settings(max_examples=300, deadline=None)
@given(params=st.dictionaries(field_names, field_values, min_size=1, max_size=12))
def test_the_sandbox_and_the_portal_sign_every_message_alike(params):
    # Spaces, colons, slashes, Vietnamese letters, '&', '=', '+': both must encode them alike.
    assert protocol.signing_string(params) == vnpay.string_to_sign(params)
    assert protocol.secure_hash(params, "k") == vnpay.sign(params, "k")
    signed = protocol.signed(params, "k")
    assert vnpay.verify(signed, "k")


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.text(max_size=20), min_size=15, max_size=15))
def test_the_sandbox_and_the_portal_sign_querydr_answers_alike(values):
    body = dict(zip(vnpay.QUERY_RESPONSE_FIELDS, values, strict=True))
    assert protocol.query_response_hash(body, "k") == vnpay.sign_query_response(body, "k")


def test_the_sandbox_checks_the_portals_querydr_request_signature():
    config = vnpay.GatewayConfig("EVNHT001", "k", "https://b/pay", "https://b/api")
    body = vnpay.build_query_request(
        config,
        request_id="r" * 32,
        txn_ref="EVNA",
        order_info="Thanh toan",
        transaction_date="20260201033005",
        created_at=datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC),
        ip_address="127.0.0.1",
    )
    assert protocol.query_request_hash(body, "k") == body["vnp_SecureHash"]


def test_protocol_time_is_vietnams():
    moment = datetime.datetime(2026, 1, 31, 20, 30, 5, tzinfo=datetime.UTC)
    assert protocol.stamp(moment) == "20260201033005"
    assert protocol.read_stamp("20260201033005") == moment


def test_amounts_are_shown_the_vietnamese_way():
    assert protocol.dong(45_216_000) == "452.160 ₫"
    assert protocol.dong(100_000_000_00) == "100.000.000 ₫"


def test_the_crc_has_the_published_check_value():
    assert protocol.crc16_ccitt_false(b"123456789") == 0x29B1


@pytest.mark.parametrize(
    "payload, account, amount, purpose",
    [
        (
            "00020101021138570010A00000072701270006970403011300110123456780208QRIBFTTA"
            "53037045802VN63049E6F",
            "0011012345678",
            None,
            "",
        ),
        (
            "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA"
            "530370454061800005802VN62340107NPS68690819thanh toan don hang63042E2E",
            "0011012345678",
            180_000,
            "thanh toan don hang",
        ),
        (
            "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA"
            "5303704540410005802VN62150811Chuyen tien6304BBB8",
            "257678859",
            1000,
            "Chuyen tien",
        ),
    ],
)
def test_the_sandbox_reads_the_published_vietqr_vectors(payload, account, amount, purpose):
    read = protocol.read_vietqr(payload)
    assert (read.account, read.amount, read.purpose) == (account, amount, purpose)


def test_the_sandbox_reads_the_portals_own_qr():
    payload = vietqr.build_payload(
        vietqr.VietQR(
            bank_bin="970436", account="0011004321987", amount=762_160, purpose="EVNABCDEFGH2"
        )
    )
    read = protocol.read_vietqr(payload)
    assert (read.bank_bin, read.account, read.amount, read.purpose) == (
        "970436",
        "0011004321987",
        762_160,
        "EVNABCDEFGH2",
    )


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "hello",
        # The right payload with one changed digit: the CRC catches it.
        "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA"
        "5303704540410015802VN62150811Chuyen tien6304BBB8",
    ],
)
def test_the_sandbox_refuses_what_is_not_a_valid_vietqr(payload):
    with pytest.raises(protocol.NotVietQR):
        protocol.read_vietqr(payload)


def test_the_sandbox_imports_nothing_from_the_portals_apps():
    forbidden = ("config", "common", "console", "portal", "customers", "payments")
    offenders = []
    for path in (ROOT / "sandbox").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "import_module",
                "__import__",
            ):
                names = ["dynamic import"]
            for name in names:
                if name.split(".")[0] in forbidden or name == "dynamic import":
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []

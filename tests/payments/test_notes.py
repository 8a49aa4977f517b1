"""The notes the system writes for agents are stored in English and read in the agent's language,
values and all (`payments.notes`)."""

from __future__ import annotations

import pytest
from django.utils import translation

from payments import notes


def vi(text: str) -> str:
    with translation.override("vi"):
        return notes.in_words(text)


@pytest.mark.parametrize("note", notes.NOTES, ids=lambda note: note.template[:40])
def test_every_note_has_its_vietnamese_and_is_found_again_with_its_values(note):
    with translation.override("vi"):
        assert translation.gettext(note.template) != note.template
    values = {name: f"V{index}" for index, name in enumerate(notes._VALUE.findall(note.template))}
    written = note.say(**values)
    shown = vi(written)
    assert shown != written
    for value in values.values():
        assert value in shown


def test_a_late_match_with_a_refund_reads_as_two_vietnamese_sentences_with_the_state_named():
    stored = (
        notes.MATCHED_LATE.say(reference="EVNY6JST9KFF", previous="cancelled")
        + " "
        + notes.SOME_PAID_ALREADY.say()
    )
    assert vi(stored) == (
        "Đã khớp với giao dịch EVNY6JST9KFF sau khi giao dịch ở trạng thái đã hủy "
        "(chuyển khoản đến muộn). Một số hóa đơn của giao dịch đã được thanh toán trước: "
        "giao dịch có khoản phải hoàn."
    )


def test_amounts_are_grouped_and_the_agents_own_words_stay():
    stored = "\n".join(
        [
            notes.WRONG_AMOUNT.say(reference="EVNA", expected=452160, amount=100000),
            notes.RESOLVED.say(note="Đã hoàn 100.000 ₫ qua Vietcombank"),
        ]
    )
    assert vi(stored) == (
        "Giao dịch EVNA cần 452.160 đồng; khoản chuyển khoản mang đến 100.000 đồng. "
        "Giao dịch được giữ nguyên.\nĐã xử lý: Đã hoàn 100.000 ₫ qua Vietcombank"
    )
    with translation.override("en"):
        # The portal groups thousands with a dot in English too (config/formats/en).
        assert "expects 452.160 VND" in notes.in_words(stored)


def test_the_longer_note_wins_and_unknown_text_is_left_alone():
    made_whole = notes.MADE_WHOLE.say(reference="EVNB", earlier="FT1, FT2")
    assert vi(made_whole).startswith("Đã khớp với giao dịch EVNB cùng (các) khoản chuyển trước")
    assert vi("Something a script wrote by hand.") == "Something a script wrote by hand."
    assert vi("") == ""


def test_a_gateway_flag_names_the_bank_in_vietnamese():
    stored = notes.GATEWAY_AMOUNT.say(
        teller=notes.THE_STATUS_QUERY,
        reported=45216000,
        payment_amount=452160,
    )
    assert vi(stored) == (
        "Kết quả tra soát của ngân hàng báo số tiền 45216000 (x100) cho giao dịch 452.160 đồng."
    )

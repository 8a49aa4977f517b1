"""The amount in words, as a Vietnamese receipt writes it ("bằng chữ")."""

from __future__ import annotations

import pytest

from common.templatetags.formatting import vnd_in_words


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (10, "Mười đồng"),
        (15, "Mười lăm đồng"),
        (21, "Hai mươi mốt đồng"),
        (25, "Hai mươi lăm đồng"),
        (105, "Một trăm linh năm đồng"),
        (110, "Một trăm mười đồng"),
        (214, "Hai trăm mười bốn đồng"),
        (1_005, "Một nghìn không trăm linh năm đồng"),
        (452_160, "Bốn trăm năm mươi hai nghìn một trăm sáu mươi đồng"),
        (1_000_000, "Một triệu đồng"),
        (1_000_500, "Một triệu năm trăm đồng"),
        (1_005_000, "Một triệu không trăm linh năm nghìn đồng"),
        (1_383_622, "Một triệu ba trăm tám mươi ba nghìn sáu trăm hai mươi hai đồng"),
        (3_500_000_000, "Ba tỷ năm trăm triệu đồng"),
        (1_000_005_000, "Một tỷ không trăm linh năm nghìn đồng"),
        (1_500_000_000_000, "Một nghìn năm trăm tỷ đồng"),
    ],
)
def test_amounts_read_as_on_a_vietnamese_receipt(amount, words):
    assert vnd_in_words(amount) == words

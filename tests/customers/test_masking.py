"""The masking rule: a household recognises its own bill; a stranger learns next to nothing."""

from __future__ import annotations

import unicodedata

import pytest

from customers.masking import mask_address, mask_name


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Nguyễn Văn An", "Nguyễn V** A**"),  # docs/interfaces.md's own example
        ("Trần Thị Hồng Nhung", "Trần T** H** N**"),
        ("Đặng Đình Đức", "Đặng Đ** Đ**"),
        ("  Lê   Ánh  ", "Lê Á**"),
        ("Hoa", "H**"),  # one word would otherwise be shown whole
        ("", ""),
    ],
)
def test_it_keeps_the_family_name_and_initials_only(name, masked):
    assert mask_name(name) == masked


def test_it_keeps_the_diacritics_of_an_initial_even_from_decomposed_text():
    decomposed = unicodedata.normalize("NFD", "Nguyễn Ánh Ơn")
    assert mask_name(decomposed) == "Nguyễn Á** Ơ**"


def test_no_given_name_survives_masking():
    name = "Phan Thị Thu Hương"
    masked = mask_name(name)
    for given in ("Thị", "Thu", "Hương"):
        assert given not in masked.split()


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        (
            "Số 12, đường Trần Phú, phường Bắc Hà, TP Hà Tĩnh",
            "***, phường Bắc Hà, TP Hà Tĩnh",
        ),
        (
            "Xóm 5, xã Cẩm Bình, huyện Cẩm Xuyên, tỉnh Hà Tĩnh",
            "***, huyện Cẩm Xuyên, tỉnh Hà Tĩnh",
        ),
        ("Xóm 3, xã Thạch Đài", "***, xã Thạch Đài"),
        ("Thôn Trung Tiến xã Sơn Trung", "***"),  # no commas: no telling where the street ends
        ("", ""),
        ("Số 7, ĐT 0912345678, thị xã Hồng Lĩnh", "***, ĐT ***, thị xã Hồng Lĩnh"),
    ],
)
def test_it_hides_the_house_and_street(address, masked):
    assert mask_address(address) == masked


def test_the_house_number_and_street_never_survive_masking():
    masked = mask_address("Số 45, ngõ 12 đường Hà Huy Tập, phường Nam Hà, TP Hà Tĩnh")
    assert "45" not in masked and "Hà Huy Tập" not in masked

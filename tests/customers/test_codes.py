"""Customer codes are normalised, then validated, before any database work."""

from __future__ import annotations

import pytest

from customers.codes import InvalidCustomerCode, clean_customer_code


@pytest.mark.parametrize(
    "typed",
    [
        "PA14HT0012345",
        "pa14ht0012345",
        "  PA14HT0012345  ",
        "PA14 HT00 12345",
        "pa14-ht00-12345",
        "PA14.HT00.12345",
        "ＰＡ１４ＨＴ００１２３４５",  # full-width, as some phone keyboards type it
        "PA14HT0012345\n",
    ],
)
def test_it_accepts_a_code_however_the_household_types_it(typed):
    assert clean_customer_code(typed) == "PA14HT0012345"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        None,
        "   ",
        "PA14HT001234",  # 12 characters
        "PA14HT00123456",  # 14 characters
        "XA14HT0012345",  # does not start with P
        "P114HT0012345",  # second character must be a letter
        "PA14HT00Ư2345",  # a Vietnamese letter
        "PA14HT0012345'; DROP TABLE customers_customer;--",
        "PA14HT0012345" * 100,
        "<script>alert(1)</script>",
        "PA14HT001234\x00",
    ],
)
def test_it_refuses_what_cannot_be_a_code(typed):
    with pytest.raises(InvalidCustomerCode):
        clean_customer_code(typed)


def test_it_follows_the_configured_pattern(settings):
    settings.CUSTOMER_CODE_PATTERN = r"^KH\d{6}$"
    assert clean_customer_code("kh 123456") == "KH123456"
    with pytest.raises(InvalidCustomerCode):
        clean_customer_code("PA14HT0012345")

import pytest

from customers.tariff import bill_amount, energy_charge


@pytest.mark.parametrize(
    ("kwh", "charge"),
    [
        (0, 0),
        (50, 50 * 1_984),
        (51, 50 * 1_984 + 2_050),
        (180, 50 * 1_984 + 50 * 2_050 + 80 * 2_380),
        (450, 50 * 1_984 + 50 * 2_050 + 100 * 2_380 + 100 * 2_998 + 100 * 3_350 + 50 * 3_460),
    ],
)
def test_each_kwh_is_priced_by_its_tier(kwh, charge):
    assert energy_charge(kwh) == charge


def test_the_amount_adds_vat_rounded_half_up_in_whole_dong():
    assert bill_amount(180) == (392_100 * 108 + 50) // 100 == 423_468
    assert isinstance(bill_amount(333), int)


def test_negative_consumption_is_refused():
    with pytest.raises(ValueError):
        energy_charge(-1)

"""The receiving bank, found one way: by the utility's own NAPAS BIN (settings.VIETQR_BIN)."""

from __future__ import annotations

import pytest

from payments import matching
from payments.models import Partner

pytestmark = pytest.mark.django_db


def test_the_receiving_bank_holds_the_utilitys_account(settings):
    bank = Partner.objects.receiving_bank()
    assert bank is not None and bank.napas_bin == settings.VIETQR_BIN
    assert matching.receiving_partner_id() == bank.pk


def test_without_a_partner_of_that_bin_there_is_none(settings):
    settings.VIETQR_BIN = "999999"
    assert Partner.objects.receiving_bank() is None
    assert matching.receiving_partner_id() is None

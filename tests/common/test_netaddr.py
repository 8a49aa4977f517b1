"""The one allow-list check: addresses and networks, IPv4 and IPv6, failing closed."""

from __future__ import annotations

import logging

import pytest

from common.netaddr import address_allowed, parse_allow_list


@pytest.mark.parametrize(
    ("address", "allow_list"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("198.51.100.7", "203.0.113.7, 198.51.100.7"),
        ("198.51.100.200", "198.51.100.0/24"),
        ("2001:db8::1", "2001:DB8:0::1"),
        ("2001:db8:ffff::1", "2001:db8::/32"),
        ("::ffff:10.1.2.3", "10.0.0.0/8"),  # IPv4 seen through a dual-stack socket
        ("10.1.2.3", " 10.1.2.3 ,, "),
        ("192.0.2.1", ""),  # no list: no restriction
        ("192.0.2.1", " , "),
    ],
)
def test_admitted(address, allow_list):
    assert address_allowed(address, allow_list)


@pytest.mark.parametrize(
    ("address", "allow_list"),
    [
        ("127.0.0.2", "127.0.0.1"),
        ("10.0.0.1", "127.0.0.0/8"),
        ("2001:db9::1", "2001:db8::/32"),
        ("10.1.2.3", "::/0"),  # an IPv6 network does not hold IPv4 clients
        ("unknown", "127.0.0.0/8"),  # what client_address says without REMOTE_ADDR
        ("", "127.0.0.0/8"),
        ("1.2.3.4", "*"),
        ("1.2.3.4", "0.0.0.0/33, all"),
        ("1.2.3.4", "1.2.3.4/"),
    ],
)
def test_refused(address, allow_list):
    assert not address_allowed(address, allow_list)


def test_an_unreadable_entry_is_left_out_with_a_warning_naming_the_setting(caplog):
    caplog.set_level(logging.WARNING, logger="common.netaddr")
    networks = parse_allow_list("10.0.0.0/8, 10.0.0.300, fe80::/10", setting="PARTNER_X_ALLOWED")
    assert [str(network) for network in networks] == ["10.0.0.0/8", "fe80::/10"]
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert "PARTNER_X_ALLOWED" in record.getMessage() and "10.0.0.300" in record.getMessage()
    # The readable entries still work.
    assert address_allowed("10.9.9.9", "10.0.0.0/8, 10.0.0.300")

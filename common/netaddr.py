"""The one allow-list check for callers identified by their address (banks' IPNs, partners' API
calls): `PARTNER_<CODE>_ALLOWED_IPS` and the like.

An allow-list is comma-separated single addresses and networks, IPv4 and IPv6
(`"203.0.113.7, 198.51.100.0/24, 2001:db8::/32"`). Addresses are compared as addresses, not as
text, so `127.0.0.0/8` admits `127.0.0.1` and `2001:db8::1` equals `2001:DB8:0::1`.
"""

from __future__ import annotations

import ipaddress
import logging

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow_list(value: str, *, setting: str = "allow-list") -> list[Network]:
    """The networks of an allow-list. An unreadable entry is left out with a warning: it is a
    typo to fix, and must neither admit everyone nor take the other entries down with it."""
    networks: list[Network] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            logger.warning("%s: ignoring the unreadable entry %r", setting, entry)
    return networks


def address_allowed(address: str, allow_list: str, *, setting: str = "allow-list") -> bool:
    """Whether a caller at `address` may proceed.

    An allow-list without entries (blank, or only commas) means "no restriction". One whose
    entries are all unreadable admits nobody: a broken setting must fail closed, not open.
    """
    if not allow_list.replace(",", "").strip():
        return True
    networks = parse_allow_list(allow_list, setting=setting)
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    # A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d; the lists name it as IPv4.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)

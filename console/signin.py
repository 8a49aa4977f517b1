"""How staff sign in: django-axes' per (name, address) lock, a per-user-name ceiling on failed
sign-ins, and Django's password check without the development demo accounts (`StaffBackend`).

Axes locks a user name at one address after AXES_FAILURE_LIMIT failures, so one client cannot
lock an agent out everywhere. Guesses spread over many addresses are caught here instead: past
`settings.SIGNIN_USERNAME_RATE` failures in a window the name is refused until that window ends,
so the wait never grows however long the guessing goes on. An address the name signed in from
lately stays exempt, so the agent at their own counter is never kept out; a success resets the
count.

The ceiling's backend sits between axes' and ours in AUTHENTICATION_BACKENDS: it only sees attempts
axes let through, and marks those that reached the password check, so that only real failures
are counted (attempts refused by a lock are not).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.exceptions import AxesBackendPermissionDenied
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from common import fastcache
from common.cache_guard import outage_tolerated
from common.ratelimit import client_address, forget, hit, spent
from customers.permissions import ROLES

SCOPE = "signin-username"


def axes_client_ip(request: HttpRequest) -> str | None:
    """`common.ratelimit.client_address`, as axes wants it (AXES_CLIENT_IP_CALLABLE): axes keeps
    it in an IP address column, so anything else (no address at all, as with the test client's
    force_login) is None."""
    address = client_address(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _known_key(username: str, address: str) -> str:
    return f"signin-known:{username}:{address}"


def _is_known(username: str, address: str) -> bool:
    known = None
    with outage_tolerated("no sign-in address known: nobody is exempt"):
        known = fastcache.get_json(_known_key(username, address))
    return bool(known)


class UserNameCeilingBackend:
    """Refuses a user name past its ceiling; authenticates nobody itself (and has no get_user,
    so that sessions are never tied to it)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None or not username:
            return None
        if not _is_known(username, client_address(request)):
            decision = spent(SCOPE, username, settings.SIGNIN_USERNAME_RATE)
            if not decision.allowed:
                request.signin_retry_after = decision.retry_after  # type: ignore[attr-defined]
                # Axes then records no failure for this attempt and the lockout page is shown.
                request.axes_locked_out = True  # type: ignore[attr-defined]
                raise AxesBackendPermissionDenied("too many failed sign-ins for this user name")
        request.signin_checked = True  # type: ignore[attr-defined]
        return None


@receiver(user_login_failed)
def _count_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    if request is None or not getattr(request, "signin_checked", False):
        return
    username = credentials.get("username")
    if username:
        hit(SCOPE, username, settings.SIGNIN_USERNAME_RATE)


@receiver(user_logged_in)
def _remember_success(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None:
        return
    username = user.get_username()
    forget(SCOPE, username, settings.SIGNIN_USERNAME_RATE)
    # The sign-in itself must not fail on the cache.
    with outage_tolerated("the address of a sign-in not remembered"):
        fastcache.set_json(
            _known_key(username, client_address(request)),
            1,
            timeout=settings.SIGNIN_KNOWN_ADDRESS_DAYS * 86400,
        )


# `seed_demo` creates one account per console role with a password printed in the README. A
# database seeded on a developer's machine can reach production; there those accounts must not
# open the console, whatever their password has become.
DEMO_USERNAMES = frozenset(f"demo-{role}" for role in ROLES)


class StaffBackend(ModelBackend):
    """ModelBackend, refusing the demo accounts unless DEBUG (development) is on: at sign-in and
    for a session opened before (`get_user` asks the same question)."""

    def user_can_authenticate(self, user: Any) -> bool:
        if not settings.DEBUG and user.get_username() in DEMO_USERNAMES:
            return False
        return bool(super().user_can_authenticate(user))

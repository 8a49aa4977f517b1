"""How staff sign in: Django's own password check, minus the development demo accounts.

`seed_demo` creates one account per console role with a password printed in the README. A
database seeded on a developer's machine can reach production; there those accounts must not
open the console, whatever their password has become.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

from customers.console.permissions import ROLES

DEMO_USERNAMES = frozenset(f"demo-{role}" for role in ROLES)


def is_demo_account(username: str) -> bool:
    return username in DEMO_USERNAMES


class StaffBackend(ModelBackend):
    """ModelBackend, refusing the demo accounts unless DEBUG (development) is on; refused at
    sign-in and for a session opened before (`get_user` asks the same question)."""

    def user_can_authenticate(self, user: Any) -> bool:
        if not settings.DEBUG and is_demo_account(user.get_username()):
            return False
        return bool(super().user_can_authenticate(user))

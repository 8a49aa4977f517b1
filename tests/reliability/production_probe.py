"""Run in a subprocess with production settings (DEBUG off): print, as JSON, the security headers
and cookies the portal sends. `python -m tests.reliability.production_probe USERNAME PASSWORD`."""

from __future__ import annotations

import json
import sys
from typing import Any


def _cookie(response: Any, name: str) -> dict[str, Any] | None:
    morsel = response.cookies.get(name)
    if morsel is None:
        return None
    return {
        "secure": bool(morsel["secure"]),
        "httponly": bool(morsel["httponly"]),
        "samesite": morsel["samesite"],
    }


def main(username: str, password: str) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    client = Client()
    plain = client.get("/")
    home = client.get("/", secure=True)
    login_page = client.get("/console/login/", secure=True)
    signed_in = client.post(
        "/console/login/", {"username": username, "password": password}, secure=True
    )
    language = Client().get("/?lang=en", secure=True)
    print(
        json.dumps(
            {
                "debug": settings.DEBUG,
                "plain_http": {"status": plain.status_code, "location": plain.get("Location")},
                "home": {"status": home.status_code, "headers": dict(home.headers)},
                "csrf_cookie": _cookie(login_page, settings.CSRF_COOKIE_NAME),
                "signed_in": signed_in.status_code,
                "session_cookie": _cookie(signed_in, settings.SESSION_COOKIE_NAME),
                "language_cookie": _cookie(language, settings.LANGUAGE_COOKIE_NAME),
                "partners": sorted(settings.PARTNER_CREDENTIALS),
                "sandbox_bank": settings.SANDBOX_BANK_ENABLED,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])

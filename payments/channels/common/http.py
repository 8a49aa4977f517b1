"""Calling a partner's API server to server: a POST with the configured timeouts, and retries.

A retry is safe only because every call names what it is about: a status query asks about one
order, and a create names its order (and, for MoMo, repeats its request id), so a second attempt
after a timeout can never make the partner open a second order for one payment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import requests
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

# Between two attempts of one call: long enough for a partner's blip, short enough for a
# household waiting on the checkout.
RETRY_PAUSE_SECONDS = 0.5


def _timeout() -> tuple[float, float]:
    connect, read = settings.GATEWAY_HTTP_TIMEOUT
    return (float(connect), float(read))


def post(
    url: str, body: Mapping[str, Any], *, form: bool = False, attempts: int = 1
) -> dict[str, Any] | None:
    """POST `body` (JSON, or form-encoded) to a partner; its JSON object answer, or None when
    it gave none (no connection, a timeout, a 5xx, or something that is not a JSON object).

    Only a call that got no answer (no connection, a timeout, a 5xx) is tried again, up to
    `attempts` in all: an answer, even a refusal, is the partner's word and is returned.
    """
    if connection.in_atomic_block:
        # Holding locks while a partner takes its time would stall every other worker.
        raise RuntimeError("HTTP to a partner must not run inside a database transaction")
    for attempt in range(1, attempts + 1):
        try:
            if form:
                response = requests.post(url, data=dict(body), timeout=_timeout())
            else:
                response = requests.post(url, json=dict(body), timeout=_timeout())
        except requests.RequestException as exc:
            logger.warning("%s (attempt %d/%d) got no answer: %s", url, attempt, attempts, exc)
        else:
            if response.status_code < 500:
                try:
                    answer = response.json()
                except ValueError:
                    answer = None
                if isinstance(answer, dict):
                    return answer
                logger.warning("%s answered %s without a JSON object", url, response.status_code)
                return None
            logger.warning(
                "%s (attempt %d/%d) answered %s", url, attempt, attempts, response.status_code
            )
        if attempt < attempts:
            time.sleep(RETRY_PAUSE_SECONDS)
    return None

"""What banks send, and how they send it: signed messages, fired together from many threads."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import requests

from payments.channels.collection.signing import sign
from payments.models import Payment
from tests.factories import new_sender_id, transfer_body  # noqa: F401 - the scenarios' vocabulary
from tests.reliability import support
from tests.sandbox.support import bank_message
from tests.sandbox.wallets import (
    MOMO_IPN_PATH,
    ZALOPAY_CALLBACK_PATH,
    momo_result,  # noqa: F401 - the scenarios' vocabulary
    zalopay_callback,  # noqa: F401
)

T = TypeVar("T")
_local = threading.local()


def session() -> requests.Session:
    """One keep-alive session per sending thread, as a bank's HTTP client would hold."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session  # type: ignore[no-any-return]


def fire_in_groups(groups: Sequence[Sequence[Callable[[], T]]], *, threads: int) -> list[list[T]]:
    """Run every call; the calls of one group are released at the same moment (a barrier).

    Groups are queued one after another and `threads` is at least the largest group, so a
    group never waits for threads held by a later one.
    """
    largest = max(len(group) for group in groups)
    assert threads >= largest
    barriers = [threading.Barrier(len(group)) for group in groups]
    results: list[list[Any]] = [[None] * len(group) for group in groups]

    def run(index: int, position: int, call: Callable[[], T]) -> None:
        barriers[index].wait(timeout=60)
        results[index][position] = call()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [
            pool.submit(run, index, position, call)
            for index, group in enumerate(groups)
            for position, call in enumerate(group)
        ]
        for future in futures:
            future.result(timeout=300)
    return results


# --- Gateway notifications (IPN) ------------------------------------------------------------------
def ipn_params(payment: Payment, *, transaction_no: str, **kwargs: Any) -> dict[str, str]:
    """The bank's signed IPN for a payment, with this suite's sandbox secret."""
    return bank_message(
        payment,
        transaction_no=transaction_no,
        secret=support.SANDBOX_SECRET,
        tmn_code=support.SANDBOX_TMN,
        **kwargs,
    )


def send_ipn(base_url: str, params: dict[str, str]) -> str:
    """GET the IPN; the RspCode, or `http-<status>` / `no-answer` when there was none."""
    try:
        response = session().get(
            f"{base_url}/callbacks/SANDBOX/ipn/?{urlencode(params)}", timeout=30
        )
    except requests.RequestException:
        return "no-answer"
    if response.status_code != 200:
        return f"http-{response.status_code}"
    return str(response.json().get("RspCode"))


# --- Wallet notifications (MoMo IPN, ZaloPay callback) ---------------------------------------------
def send_momo_ipn(base_url: str, body: dict[str, Any]) -> str:
    """POST MoMo's IPN; the HTTP status as text ("204" when stored), or `no-answer`."""
    try:
        response = session().post(
            base_url + MOMO_IPN_PATH,
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    except requests.RequestException:
        return "no-answer"
    return str(response.status_code)


def send_zalopay_callback(base_url: str, body: dict[str, Any]) -> str:
    """POST ZaloPay's callback; `zp<return_code>`, `http-<status>` or `no-answer`."""
    try:
        response = session().post(
            base_url + ZALOPAY_CALLBACK_PATH,
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    except requests.RequestException:
        return "no-answer"
    if response.status_code != 200:
        return f"http-{response.status_code}"
    return f"zp{response.json().get('return_code')}"


# --- Transfer notifications -----------------------------------------------------------------------
def send_transfer(base_url: str, body: dict[str, Any], *, key: str = support.WEBHOOK_KEY) -> int:
    """POST the notification; the HTTP status (0 when the connection failed)."""
    try:
        response = session().post(
            f"{base_url}/callbacks/transfers/",
            data=json.dumps(body),
            headers={"Authorization": f"Apikey {key}", "Content-Type": "application/json"},
            timeout=30,
        )
    except requests.RequestException:
        return 0
    return response.status_code


# --- Collection API -------------------------------------------------------------------------------
def collection_post(
    base_url: str, path: str, payload: Any, *, partner: str = "VCB", secret: str = ""
) -> requests.Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Partner-Code": partner,
        "X-Timestamp": stamp,
        "X-Signature": sign(secret or support.VCB_SECRET, stamp, "POST", urlsplit(path).path, body),
    }
    return session().post(f"{base_url}{path}", data=body, headers=headers, timeout=30)

"""POST /callbacks/zalopay/callback/: ZaloPay's payment callbacks (docs/protocols.md §4).

Thin on purpose: `payments.channels.zalopay.channel.callback_receive` verifies the callback,
stores it and decides the answer, and an applier applies it. The answer is ZaloPay's JSON
(`{"return_code": 1, "return_message": "success"}`; 2 already processed, -1 bad MAC, 0 try
again): 0 when the database could not take the message, so ZaloPay sends it again. A body that
is not ZaloPay's shape at all is an error in the contract's JSON shape (`common.api`).
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from common.api import error_response
from common.ratelimit import client_address
from payments.channels.zalopay import channel
from payments.channels.zalopay import protocol as zalopay

logger = logging.getLogger(__name__)


@csrf_exempt
@never_cache
def zalopay_callback(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = error_response(
            "method_not_allowed", "ZaloPay callbacks are sent with POST.", 405
        )
        response["Allow"] = "POST"
        return response
    try:
        raw = request.body.decode("utf-8")
        _receipt, answer = channel.callback_receive(
            raw=raw, headers=request.headers, remote_addr=client_address(request)
        )
    except (RequestDataTooBig, UnicodeDecodeError, channel.Unreadable):
        return error_response(
            "malformed_request", 'The body is not {"data": "<JSON>", "mac": ..., "type": 1}.', 400
        )
    except (DatabaseError, InterfaceError):
        logger.exception("ZaloPay callback not stored: database unavailable; ZaloPay will retry")
        answer = zalopay.ANSWER_RETRY
    except Exception:
        logger.exception("ZaloPay callback failed unexpectedly")
        answer = zalopay.ANSWER_RETRY
    return JsonResponse(channel.as_json(answer))

"""POST /callbacks/momo/ipn/: MoMo's payment notifications (docs/protocols.md §4).

Thin on purpose: `payments.channels.momo.channel.ipn_receive` verifies the message and stores
it, and an applier applies it. MoMo wants HTTP 204 within 15 seconds for every message it need
not send again; anything else is an error in the contract's JSON shape (`common.api`), and a
5xx when the database could not take the message, so MoMo sends it again.
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from common.api import error_response
from common.ratelimit import client_address
from payments.channels.common.receiving import Receipt
from payments.channels.momo import channel

logger = logging.getLogger(__name__)


@csrf_exempt
@never_cache
def momo_ipn(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = error_response(
            "method_not_allowed", "MoMo notifications are sent with POST.", 405
        )
        response["Allow"] = "POST"
        return response
    try:
        raw = request.body.decode("utf-8")
        receipt = channel.ipn_receive(
            raw=raw, headers=request.headers, remote_addr=client_address(request)
        )
    except (RequestDataTooBig, UnicodeDecodeError, channel.Unreadable):
        return error_response("malformed_request", "The body is not a UTF-8 JSON object.", 400)
    except (DatabaseError, InterfaceError):
        logger.exception("MoMo IPN not stored: database unavailable; MoMo will retry")
        return error_response("unavailable", "Not stored; send it again later.", 503)
    except Exception:
        logger.exception("MoMo IPN failed unexpectedly")
        return error_response("internal_error", "Not stored; send it again later.", 500)
    if receipt is Receipt.FORGED:
        return error_response("invalid_signature", "The signature does not match.", 401)
    if receipt is Receipt.UNLISTED:
        return error_response(
            "address_not_allowed", "This address may not send this partner's messages.", 403
        )
    return HttpResponse(status=204)

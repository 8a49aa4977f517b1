"""GET /callbacks/{partner}/ipn/: VNPay 2.1.0 payment notifications (docs/protocols.md §2).

Thin on purpose: `payments.channels.vnpay.gateway.ipn_receive` stores the message, decides the
answer and hands the message to a worker, which applies it. Whatever goes wrong here, the bank
gets the protocol's JSON: `99` when the database cannot take the message, so the bank sends it
again.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from common.api import error_response
from common.ratelimit import client_address
from payments.channels.vnpay import gateway
from payments.channels.vnpay import protocol as vnpay

logger = logging.getLogger(__name__)


@csrf_exempt
@never_cache
def gateway_ipn(request: HttpRequest, partner: str) -> JsonResponse:
    if request.method != "GET":
        response = error_response(
            "method_not_allowed", "Gateway notifications are sent with GET.", 405
        )
        response["Allow"] = "GET"
        return response
    # The values exactly as received: the signature covers them, not anything we parse.
    params = {name: str(value) for name, value in request.GET.items() if name.startswith("vnp_")}
    # The query string as Django decoded it for request.GET (WSGI hands it over as latin-1),
    # so the worker that re-reads the stored message sees exactly the values verified here.
    raw_query = (
        request.META.get("QUERY_STRING", "")
        .encode("iso-8859-1", "replace")
        .decode("utf-8", "replace")
    )
    try:
        answer = gateway.ipn_receive(
            partner_code=partner,
            params=params,
            raw_query=raw_query,
            headers=request.headers,
            remote_addr=client_address(request),
        )
    except (DatabaseError, InterfaceError):
        logger.exception(
            "IPN for %s not stored: database unavailable; the bank will retry", partner
        )
        answer = gateway.IpnAnswer(*vnpay.RSP_UNKNOWN_ERROR)
    except Exception:
        logger.exception("IPN for %s failed unexpectedly", partner)
        answer = gateway.IpnAnswer(*vnpay.RSP_UNKNOWN_ERROR)
    return JsonResponse(answer.as_json())

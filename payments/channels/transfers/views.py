"""POST /callbacks/transfers/: bank-transfer notifications (SePay shape, docs/architecture.md).

A request without the right API key is answered 401 and not stored: nothing of it is worth
keeping, and storing it would let anyone fill the inbox.

The sender wants a 2xx within seconds and retries otherwise, so this view only authenticates,
checks the shape, stores the notification in the inbox under the sender's id and answers
`{"success": true}`; an applier matches it (`payments.matching.apply_credits`). A repeat of the
same id finds the stored row and gets the same answer, and is applied once. A broker outage
does not change the answer: the row is stored, and the inbox sweeper applies it later.

Error messages are in English whatever the page language: a bank's server reads them.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from common.api import error_response
from common.ratelimit import client_address
from payments import inbox, matching
from payments.channels.transfers import notifications
from payments.models import InboundMessage

logger = logging.getLogger(__name__)

SCHEME = "apikey"


def _authorised(request: HttpRequest) -> bool:
    expected = settings.TRANSFER_WEBHOOK_API_KEY
    if not expected:
        return False  # no key configured: nobody may post
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != SCHEME:
        return False
    return hmac.compare_digest(key.strip().encode("utf-8"), expected.encode("utf-8"))


@csrf_exempt
def transfer_notification(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = error_response("method_not_allowed", "Use POST.", 405)
        response["Allow"] = "POST"
        return response
    if not _authorised(request):
        response = error_response(
            "unauthorized", "Send the header Authorization: Apikey <your key>.", 401
        )
        response["WWW-Authenticate"] = "Apikey"
        return response
    try:
        text = request.body.decode("utf-8")
        data = json.loads(text)
    except RequestDataTooBig:
        return error_response("malformed_request", "The body is too large.", 400)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, absurdly deep nesting
        return error_response("malformed_request", "The body is not valid UTF-8 JSON.", 400)
    try:
        sender_id, _credit = notifications.credit_from_notification(data)
    except matching.InvalidCredit as exc:
        return error_response(
            "invalid_request", "Some fields are missing or invalid.", 400, fields=exc.fields
        )
    message_id = inbox.inbox_receive(
        kind=InboundMessage.Kind.TRANSFER,
        dedupe_key=f"transfer:{sender_id}",
        body=text,
        partner_id=matching.receiving_partner_id(),
        headers=inbox.keep_headers(request.headers, client_address(request)),
        signature_valid=True,
    )
    if message_id is not None:
        # After the commit; if the broker is down this logs and the sweeper applies it.
        inbox.inbox_wake()
    else:
        logger.info("transfer notification %s repeated: stored once", sender_id)
    return JsonResponse({"success": True})

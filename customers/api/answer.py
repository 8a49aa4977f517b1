"""The lookup API's answer, one rule for the two ways it is reached.

`GET /api/v1/customers/{code}/bills/` is served in production by a plain WSGI function
(config/lookups.py), ahead of any Django handler, and through the URLconf by
`CustomerBillsView` (the test client, and the view the OpenAPI schema is generated from). Both
call `bills_answer` (the view through `bills_response`), and tests/config/test_lookup_api.py
holds the two to the same statuses, bodies and headers.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _

from common.api import error_response
from common.error_messages import error_message
from common.error_pages import rate_limited_response
from common.ratelimit import lookup_hit_and_get_for
from customers import selectors
from customers.codes import InvalidCustomerCode, clean_customer_code

ALLOW = "GET, HEAD"


def bills_response(*, method: str, code: str, client: str, language: str) -> HttpResponse:
    """The answer to `method` on the lookup of `code` (as typed in the path) for the client
    address `client`, its messages in `language`."""
    return as_response(bills_answer(method=method, code=code, client=client, language=language))


def as_response(answer: bytes | HttpResponse) -> HttpResponse:
    """`bills_answer`'s answer as the response sent."""
    response = (
        HttpResponse(answer, content_type="application/json")
        if isinstance(answer, bytes)
        else answer
    )
    # Personal data, however masked: no shared cache keeps it.
    add_never_cache_headers(response)
    return response


def bills_answer(*, method: str, code: str, client: str, language: str) -> bytes | HttpResponse:
    """`bills_response` before its cache headers: the JSON body of a customer's bills when it
    is a 200 (config/lookups.py sends it with the headers the layers gave the first 200 of
    its kind), otherwise the whole answer."""
    response: HttpResponse
    if method not in ("GET", "HEAD"):
        with translation.override(language):
            response = error_response(
                "method_not_allowed", _("This address only answers GET requests."), 405
            )
        response["Allow"] = ALLOW
        return response
    try:
        clean = clean_customer_code(code)
    except InvalidCustomerCode:
        clean = ""
    # One budget per client address, shared with the bills page (LOOKUP_RATE_LIMIT), counted
    # in the same Redis round trip as the cached answer is read.
    decision, cached = lookup_hit_and_get_for(
        client, cached=selectors.api_cache_key(clean) if clean else None, raw=True
    )
    if not decision.allowed:
        with translation.override(language):
            return rate_limited_response(retry_after=decision.retry_after)
    if not clean:
        with translation.override(language):
            response = error_response(
                "invalid_customer_code",
                error_message("invalid_customer_code"),
                400,
                fields={
                    "code": [_("A customer code has 13 letters and digits, e.g. PA14HT0012345.")]
                },
            )
    else:
        # The serializer documents the shape; the body is built directly, which is several
        # times cheaper, and a test holds the two together.
        answer = selectors.lookup_api_answer(code=clean, cached=cached)
        if answer is not None:
            return answer
        with translation.override(language):
            response = error_response(
                "customer_not_found", error_message("customer_not_found"), 404
            )
    return response

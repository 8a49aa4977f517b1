"""The household's first pages: type the customer code, see the bills, choose how to pay."""

from __future__ import annotations

import time

from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from common import error_pages
from common.ratelimit import lookup_hit_and_get
from customers import selectors
from customers.codes import InvalidCustomerCode, clean_customer_code
from payments.channels import registry
from payments.models import Partner
from portal.views import bills_page
from portal.views.in_progress import open_payment

# How long a process keeps the list of partners offering a payment page.
GATEWAYS_SECONDS = 60
# What is echoed back of a refused code: enough to spot the typo, not a page of garbage.
ECHO_LENGTH = 40


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("code")
    if raw is None:
        return render(request, "portal/home.html", {})
    if not raw.strip():
        return _lookup_error(
            request, raw, status=400, message=_("Please enter your customer code.")
        )
    try:
        code = clean_customer_code(raw)
    except InvalidCustomerCode:
        return _lookup_error(request, raw, status=400)
    # No database work here: the bills page does the lookup (and counts it against the limit).
    return redirect("bills", code=code)


@never_cache
@require_safe
def bills(request: HttpRequest, code: str) -> HttpResponse:
    return bills_response(bills_answer(request, code))


def bills_answer(request: HttpRequest, code: str) -> bytes | HttpResponse:
    """The bills page of `code` as typed in the path: a customer's page as its HTML (bytes),
    anything else (an error page, the redirect to the code's one address, a 429) as the whole
    answer. The view makes it whole with `bills_response`; config/lookups.py sends a customer's
    page with the headers the layers gave the first page of its kind, unless it showed or added
    flash messages."""
    try:
        clean = clean_customer_code(code)
    except InvalidCustomerCode:
        clean = ""
    # The client's budget counted and the cached lookup read in one round trip.
    decision, cached = lookup_hit_and_get(
        request, cached=selectors.bills_cache_key(clean) if clean == code else None
    )
    if not decision.allowed:
        return error_pages.too_many_requests(request, retry_after=decision.retry_after)
    if not clean:
        return _lookup_error(request, code, status=400)
    if clean != code:
        # One address per customer, whatever was typed: 'pa14 ht…' becomes '/bills/PA14HT…/'.
        return redirect("bills", code=clean)
    lookup = selectors.customer_bills_lookup(code=clean, cached=cached)
    if lookup is None:
        return _lookup_error(request, clean, status=404)
    page = bills_page.bills_page(
        lookup,
        gateways=usable_gateways(),
        in_progress=open_payment(request, clean),
        # Flash messages to show, or a query the language links keep: rendered as usual.
        plain=bool(request.GET) or bool(len(get_messages(request))),
    )
    return bills_page.render(request, page).encode()


def bills_response(answer: bytes | HttpResponse) -> HttpResponse:
    """`bills_answer`'s answer as the response the view returns (its never_cache adds the
    cache headers)."""
    if isinstance(answer, HttpResponse):
        return answer
    response = HttpResponse(answer)
    # A customer's page is nobody's business but theirs: keep it out of search engines.
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _lookup_error(
    request: HttpRequest, raw: str, *, status: int, message: str | None = None
) -> HttpResponse:
    if status == 404:
        title = _("We could not find this customer code")
        message = message or _(
            "No customer has this code. Please check it against your electricity bill and try "
            "again."
        )
    else:
        title = _("This customer code is not valid")
        message = message or _(
            "A customer code has 13 letters and digits and starts with P, for example "
            "PA14HT0012345. Please check it and try again."
        )
    return render(
        request,
        "portal/home.html",
        {"code": raw[:ECHO_LENGTH], "error_title": title, "error": message},
        status=status,
    )


class _PartnerList:
    """The partners offering a payment page, read from the database at most once a minute by
    each process: the table changes a few times a year, and reading it from the shared cache
    cost the bills page a round trip to Redis and the unpickling of model instances on every
    request (measured). A change shows within GATEWAYS_SECONDS in each process (the cache kept
    it 300 s); a payment's start reads its partner again, so a partner disabled meanwhile is
    refused there."""

    def __init__(self) -> None:
        self._read: tuple[float, list[Partner]] | None = None

    def get(self) -> list[Partner]:
        read, now = self._read, time.monotonic()
        if read is None or now - read[0] >= GATEWAYS_SECONDS:
            # Two threads may read the table at once when it expires: harmless.
            read = self._read = (
                now,
                list(Partner.objects.filter(offers_redirect=True, enabled=True)),
            )
        return read[1]

    def forget(self) -> None:
        self._read = None


partner_list = _PartnerList()


def usable_gateways() -> list[Partner]:
    """Partners offering a payment page (a bank's, or a wallet's) that are enabled and configured
    with everything their protocol needs (e.g. SANDBOX in dev).

    Usability is checked on every request, since it also depends on this process's environment
    (the partner's secret).
    """
    return [partner for partner in partner_list.get() if registry.offered(partner)]

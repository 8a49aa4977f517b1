"""The opt-out link in every reminder (`/unsubscribe/{token}/`): GET asks, POST opts out.

A GET changes nothing, because mail scanners and link previews open links; the one button
posts. Effective at once: the sender checks the opt-out before each message.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from customers import unsubscribe
from customers.models import Customer
from payments import reminders


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    found = unsubscribe.read_token(token)
    customer = Customer.objects.filter(pk=found[0]).first() if found else None
    if found is None or customer is None:
        raise Http404("no such link")
    channel = found[1]
    done = request.method == "POST"
    if done:
        reminders.reminder_opt_out(customer_id=customer.pk, channel=channel)
    response = render(
        request,
        "portal/unsubscribe.html",
        {"customer": customer, "channel": channel, "token": token, "done": done},
    )
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "same-origin"
    return response

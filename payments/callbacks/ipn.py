"""GET /callbacks/{partner}/ipn/: VNPay 2.1.0 payment notifications. Built in issue 6."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def gateway_ipn(request: HttpRequest, partner: str) -> JsonResponse:
    return JsonResponse({"RspCode": "99", "Message": "Unknown error"})

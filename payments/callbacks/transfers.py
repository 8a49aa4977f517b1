"""POST /callbacks/transfers/: bank-transfer notifications (SePay shape). Built in issue 5."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from portal.api import error_response


@csrf_exempt
@require_POST
def transfer_notification(request: HttpRequest) -> JsonResponse:
    return error_response("not_implemented", "Transfer notifications are not enabled yet.", 503)

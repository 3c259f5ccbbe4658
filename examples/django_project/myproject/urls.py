from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@require_GET
def index(request):
    return HttpResponse("Hello from Django!", content_type="text/plain")


@csrf_exempt
@require_POST
def echo(request):
    content_type = request.content_type or "application/octet-stream"
    return HttpResponse(request.body, content_type=content_type)


urlpatterns = [
    path("", index),
    path("echo", echo),
]

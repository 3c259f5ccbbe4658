import hashlib

from django.http import HttpResponse, JsonResponse
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


@csrf_exempt
@require_POST
def files(request):
    # A multipart upload, as Django handles it: files over
    # FILE_UPLOAD_MAX_MEMORY_SIZE go to a temporary file as the body
    # streams in.
    upload = request.FILES["file"]
    digest, length = hashlib.sha256(), 0
    for piece in upload.chunks():
        digest.update(piece)
        length += len(piece)
    return JsonResponse({"sha256": digest.hexdigest(), "length": length, "filename": upload.name})


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("files", files),
]

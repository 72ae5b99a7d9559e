"""The image page's own views beside the admin's change form: a transition's button,
scrub now, download and upload, each checked against policy and calling one function
of `images.services` with ``actor=request.user``; and the helpers the image pages share
(their URLs, the way back, the data as an attachment)."""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme

from images import policy, services
from images.admin.display import image_label
from images.admin.outcomes import REFUSED, attempt, scrub_images, transition_one
from images.admin.recycle_bin import scrub_confirmation
from images.admin.transitions import ADMIN_TRANSITIONS, available_transitions
from images.api.downloads import ImageDataResponse, RemoteDataResponse
from images.api.parsers import OCTET_STREAM
from images.errors import ImageError
from images.models import Image
from images.policy import Action
from images.services import ImageData


def image_url(image: Image, view: str, *args: str) -> str:
    return reverse(f"admin:images_image_{view}", args=[image.pk, *args])


def back(request: HttpRequest, image: Image) -> HttpResponseRedirect:
    """To the page named in `next` (the recycle bin's buttons come back to it), but
    only on this site: a posted URL must not become an open redirect."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = image_url(image, "change")
    return HttpResponseRedirect(target)


def attachment(request: HttpRequest, image: Image, data: ImageData) -> HttpResponse:
    """The image's bytes as a download, streamed with their size known (Content-Length,
    so the browser shows how much is left) and their MD5, as the API sends them; on
    disk under gunicorn, with sendfile(2). FileResponse would only know the size of a
    local file: an S3 or RBD object would be sent without Content-Length."""
    filename = f"{image.name or image.pk}.{image.disk_format or 'img'}"
    if data.empty:
        # A size-0 image has no location: there is nothing in the store to open.
        response = HttpResponse(b"", content_type=OCTET_STREAM)
    elif data.external_url:
        # Streamed through, as the API does: the URL may carry credentials.
        response = RemoteDataResponse(data, content_type=OCTET_STREAM)
    else:
        response = ImageDataResponse(
            data.open(),
            length=data.size,
            sendfile=data.local_path() is not None,
            sock=request.META.get("gunicorn.socket"),
            content_type=OCTET_STREAM,
        )
        if data.checksum:
            response["Content-MD5"] = data.checksum
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


class ImageActionViews:
    """The extra views of ImageAdmin (import from a URL: ImportFromUrlMixin)."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/transition/<str:name>/",
                view(self.transition_view),
                name="images_image_transition",
            ),
            path("<path:object_id>/scrub/", view(self.scrub_view), name="images_image_scrub"),
            path(
                "<path:object_id>/download/",
                view(self.download_view),
                name="images_image_download",
            ),
            path("<path:object_id>/upload/", view(self.upload_view), name="images_image_upload"),
            *super().get_urls(),
        ]

    def _image_or_404(self, request, object_id) -> Image:
        image = self.get_object(request, unquote(object_id))
        if image is None:
            raise Http404(f"No image with id {object_id}")
        if not self.has_view_permission(request, image):
            raise PermissionDenied
        return image

    def transition_view(self, request, object_id, name):
        """POST only. Runs a transition if the user holds its permission and the
        image's current status allows it; otherwise nothing changes."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        transition = ADMIN_TRANSITIONS.get(name)
        if transition is None:
            raise Http404(f"No transition {name!r} in the admin")
        image = self._image_or_404(request, object_id)
        if not policy.may(request.user, image, transition.action):
            raise PermissionDenied
        if transition not in available_transitions(request.user, image):
            messages.error(
                request,
                f"{image_label(image)} was not {transition.done}: "
                f"{transition.label.lower()} is not possible while it is {image.status}.",
            )
            return back(request, image)
        transition_one(request, self, image, transition)
        return back(request, image)

    def scrub_view(self, request, object_id):
        """Remove a pending_delete image's data now, before its time, after a
        confirmation page. Needs images.scrub_image."""
        image = self._image_or_404(request, object_id)
        if not policy.may(request.user, image, Action.SCRUB):
            raise PermissionDenied
        if request.method == "POST":
            done = scrub_images(request, [image])
            if done:
                return HttpResponseRedirect(reverse("admin:images_pendingdeleteimage_changelist"))
            return HttpResponseRedirect(image_url(image, "change"))
        return scrub_confirmation(request, self, [image], action=None)

    def download_view(self, request, object_id):
        image = self._image_or_404(request, object_id)
        data = attempt(
            request,
            image,
            "downloaded",
            lambda: services.image_download(image=image, actor=request.user),
        )
        if data is REFUSED:
            return HttpResponseRedirect(image_url(image, "change"))
        if data is None:
            messages.warning(request, f"{image_label(image)} has no data ({image.status}).")
            return HttpResponseRedirect(image_url(image, "change"))
        try:
            return attachment(request, image, data)
        except ImageError as exc:  # an external location that does not answer
            messages.error(request, f"{image_label(image)} could not be read: {exc.message}")
            return HttpResponseRedirect(image_url(image, "change"))

    def upload_view(self, request, object_id):
        """Upload data to a queued image from a multipart form: the page's fallback
        without JavaScript. Django spools a large file to a temporary file (never to
        memory) and image_upload streams it into the store. With JavaScript the page
        PUTs the file to the API's data endpoint instead, streamed with no temporary
        file (templates/admin/images/image/upload_panel.html, images/upload.js)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        image = self._image_or_404(request, object_id)
        if not policy.may(request.user, image, Action.UPLOAD):
            raise PermissionDenied
        upload = request.FILES.get("data")
        if upload is None:
            messages.error(request, f"{image_label(image)} was not uploaded: choose a file.")
            return HttpResponseRedirect(image_url(image, "change"))
        result = attempt(
            request,
            image,
            "uploaded",
            lambda: services.image_upload(
                image=image, actor=request.user, stream=upload, declared_size=upload.size
            ),
        )
        if result is not REFUSED:
            self.log_change(request, result, f"Uploaded {result.size} bytes")
            messages.success(
                request,
                f"{image_label(result)}: {filesizeformat(result.size)} uploaded; "
                f"it is now {result.status} (MD5 {result.checksum}).",
            )
        return HttpResponseRedirect(image_url(image, "change"))

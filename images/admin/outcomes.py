"""What happened to each image, told to the administrator.

Nothing here writes a status or touches the store: every change calls a function
of `images.services` with ``actor=request.user``. The domain's refusals
(`ImageError`) become admin messages here and only here, for a single button and
for a bulk action alike: a bulk action runs each image on its own and says, per
image, what happened or why it was skipped (protected, wrong status)."""

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from images import selectors, services
from images.admin.display import image_label, moment
from images.admin.transitions import ADMIN_TRANSITIONS, AdminTransition
from images.enums import Status
from images.errors import ImageError
from images.models import Image

REFUSED = object()


def confirmation_page(
    request: HttpRequest, model_admin: admin.ModelAdmin, template: str, **context: Any
) -> TemplateResponse:
    """A page that says what an action will do before it does it (delete, scrub).
    Opened from a bulk action, it posts the selection back to that action, hence
    the checkbox name."""
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            **context,
        },
    )


def report_refusal(request: HttpRequest, image: Image | None, verb: str, error: ImageError) -> None:
    """The one place a domain refusal becomes something an administrator reads."""
    subject = image_label(image) if image is not None else "The image"
    messages.error(request, f"{subject} was not {verb}: {error.message}")


def attempt(request: HttpRequest, image: Image, verb: str, operation: Callable[[], Any]) -> Any:
    """Run one domain operation; on refusal, say so and return REFUSED."""
    try:
        return operation()
    except ImageError as error:
        report_refusal(request, image, verb, error)
        return REFUSED


def run_each(
    request: HttpRequest, images: Iterable[Image], verb: str, operation: Callable[[Image], Image]
) -> list[Image]:
    """A bulk action: each image on its own, each refusal reported with its reason."""
    done = []
    for image in images:
        result = attempt(request, image, verb, lambda image=image: operation(image))
        if result is not REFUSED:
            done.append(result)
    return done


def transition_one(
    request: HttpRequest, model_admin: admin.ModelAdmin, image: Image, transition: AdminTransition
) -> Image | None:
    """One transition on one image, logged and reported with the status it left the
    image in; None if the domain refused it."""
    source = image.status
    result = attempt(request, image, transition.done, lambda: transition.run(request, image))
    if result is REFUSED:
        return None
    model_admin.log_change(request, result, f"{transition.label}: {source} → {result.status}")
    messages.success(
        request, f"{image_label(result)} was {transition.done}; it is now {result.status}."
    )
    return result


def transition_each(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    images: Iterable[Image],
    transition: AdminTransition,
) -> None:
    """A bulk deactivate or reactivate: every changed image ends in the same status,
    so one message names them all; images already there are told apart, because
    the service accepts them without changing anything."""
    images = list(images)  # iterated twice: read the rows once
    before = {image.pk: image.status for image in images}
    done = run_each(request, images, transition.done, lambda image: transition.run(request, image))
    changed = [image for image in done if before[image.pk] != image.status]
    for image in done:
        if before[image.pk] == image.status:
            messages.warning(
                request, f"{image_label(image)} was already {image.status}: nothing to do."
            )
    if changed:
        for image in changed:
            model_admin.log_change(request, image, f"{transition.label}: now {image.status}")
        names = ", ".join(image_label(image) for image in changed)
        messages.success(
            request,
            f"{transition.done.capitalize()} {len(changed)} "
            f"image{'s' if len(changed) != 1 else ''}: {names}.",
        )


@admin.action(description="Restore selected images", permissions=["restore"])
def restore_selected(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Image]
) -> None:
    """The restore action of both the image list and the recycle bin. Each image is
    restored and reported as its own restore button does, because each goes back
    to its own status (active or deactivated), and that is what recovery staff
    need to read."""
    restore = ADMIN_TRANSITIONS["restore"]
    for image in queryset:
        transition_one(request, model_admin, image, restore)


def delete_images(
    request: HttpRequest, model_admin: admin.ModelAdmin, images: Iterable[Image]
) -> list[Image]:
    """Delete through image_delete, never QuerySet.delete(): an image may go to the
    recycle bin or be removed for good, and the message says which."""
    deleted = run_each(
        request,
        images,
        "deleted",
        lambda image: services.image_delete(image=image, actor=request.user),
    )
    for image in deleted:
        model_admin.log_change(request, image, f"Deleted: now {image.status}")
        if image.status == Status.PENDING_DELETE:
            messages.success(
                request,
                f"{image_label(image)} is in the recycle bin until "
                f"{moment(selectors.scrub_due_at(image))}; it can be restored until then.",
            )
        else:
            messages.success(
                request, f"{image_label(image)} was deleted for good; its data is removed."
            )
    return deleted


def scrub_images(request: HttpRequest, images: Iterable[Image]) -> list[Image]:
    done = run_each(
        request,
        images,
        "scrubbed",
        lambda image: services.image_scrub(image=image, actor=request.user),
    )
    for image in done:
        messages.success(
            request, f"{image_label(image)} was scrubbed: its data is removed for good."
        )
    return done

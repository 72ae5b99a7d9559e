"""Refusals that must happen before any view runs."""

from images.api.errors import error_response


class RejectNulMiddleware:
    """A NUL character in the path or the query string answers 400.

    PostgreSQL cannot store or even compare text that contains NUL: a filter such as
    ``?name=%00`` would otherwise fail deep inside the database driver (a 500), in the
    API and the admin alike. JSON bodies are checked by the parsers.
    """

    message = "The request URL may not contain NUL characters (%00)."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            return error_response(request, 400, self.message)
        return self.get_response(request)

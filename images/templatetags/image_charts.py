"""The admin index's charts: {% image_dashboard %} draws them for those who may
view images, from images.dashboard's aggregates (a few queries in all)."""

from django import template

from images import dashboard
from images.admin import charts, display
from images.admin.charts import Chart
from images.enums import Status

register = template.Library()


@register.inclusion_tag("admin/images/dashboard.html", takes_context=True)
def image_dashboard(context) -> dict:
    request = context.get("request")
    if request is None or not request.user.has_perm("images.view_image"):
        return {"charts": None}
    board = dashboard.dashboard()
    days = [day.isoformat() for day in board.counts.days]
    statuses = Status.values
    scrub_days = [label for label, _, _ in board.scrubs]
    # In Keystone mode an owner is a project id: named as the image list names it
    owners = [display.owner(owner) for owner, _, _ in board.owners]
    return {
        "charts": [
            charts.bar_chart(
                Chart(
                    "Images per status",
                    days,
                    _only(board.counts.series, statuses),
                    states=True,
                )
            ),
            charts.bar_chart(
                Chart(
                    "Bytes per status",
                    days,
                    _only(board.bytes.series, statuses),
                    fmt=charts.size,
                    states=True,
                )
            ),
            charts.bar_chart(
                Chart("Uploads and deletions", days, board.activity.series, stacked=False)
            ),
            charts.bar_chart(
                Chart(
                    "Recycle bin: scrubs due",
                    scrub_days,
                    {
                        "pending_delete": [n for _, n, _ in board.scrubs],
                    },
                )
            ),
            charts.hbar_chart(
                Chart(
                    "Top owners by bytes",
                    owners,
                    {"bytes": [size for _, size, _ in board.owners]},
                    fmt=charts.size,
                    axis="Owner",
                )
            ),
        ]
    }


def _only(series: dict, statuses: list[str]) -> dict:
    """The statuses that held something in the window, in lifecycle order: a legend
    of nine entries where two have data would hide the two."""
    return {status: series[status] for status in statuses if any(series[status])}

"""The admin index's charts (images.dashboard, images.admin.charts,
{% image_dashboard %}) and an image page's timeline, from a seeded history."""

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from images import dashboard
from images.admin.charts import Chart, bar_chart, nice
from images.enums import Operation, Status
from images.models import Image
from tests.factories import image_in, seeded_history

pytestmark = pytest.mark.django_db

S = Status
O = Operation  # noqa: E741


class Tables(HTMLParser):
    """The charts' data tables: {chart: {row label: {series: value}}}."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict = {}
        self.chart = self.row = None
        self.in_row_label = False
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-chart" in attrs:
            self.chart = self.tables.setdefault(attrs["data-chart"], {})
        elif self.chart is not None and tag == "th" and attrs.get("scope") == "row":
            self.in_row_label, self.text = True, ""
        elif self.chart is not None and tag == "td":
            self.chart[self.row][attrs["data-series"]] = int(attrs["data-value"])

    def handle_endtag(self, tag):
        if tag == "table":
            self.chart = None
        elif self.in_row_label and tag == "th":
            self.row, self.in_row_label = self.text, False
            self.chart[self.row] = {}

    def handle_data(self, data):
        self.text += data


def day(n: int) -> str:
    return (timezone.localdate() - timedelta(days=n)).isoformat()


@pytest.fixture
def seeded(alice, bob, settings):
    """alice's image uploaded ten days ago (1000 bytes), bob's uploaded five days ago
    (500 bytes) and deleted two days ago, a queued one made today."""
    settings.IMAGES_SCRUB_DELAY_SECONDS = 5 * 86400
    now = timezone.now()
    ago = lambda days: now - timedelta(days=days)  # noqa: E731
    kept = image_in(S.ACTIVE, owner="alice", name="kept")
    binned = image_in(S.PENDING_DELETE, owner="bob", name="binned")
    fresh = image_in(S.QUEUED, owner="alice", name="fresh")
    Image.objects.filter(pk=kept.pk).update(size=1000)
    Image.objects.filter(pk=binned.pk).update(size=500, deleted_at=ago(2))
    seeded_history(
        kept,
        [
            (ago(10), "", S.QUEUED, O.CREATE),
            (ago(10), S.QUEUED, S.SAVING, O.UPLOAD),
            (ago(10), S.SAVING, S.ACTIVE, O.UPLOAD),
        ],
    )
    seeded_history(
        binned,
        [
            (ago(5), "", S.QUEUED, O.CREATE),
            (ago(5), S.QUEUED, S.SAVING, O.UPLOAD),
            (ago(5), S.SAVING, S.ACTIVE, O.UPLOAD),
            (ago(2), S.ACTIVE, S.PENDING_DELETE, O.DELETE),
        ],
    )
    seeded_history(fresh, [(now, "", S.QUEUED, O.CREATE)])
    return binned


def index(client, admin_user) -> dict:
    client.force_login(admin_user)
    response = client.get("/admin/")
    assert response.status_code == 200
    return Tables(response.content.decode()).tables


def test_dashboard_reconstructs_images_and_bytes_per_status_per_day(seeded, client, admin_user):
    tables = index(client, admin_user)
    counts, sizes = tables["chart-images-per-status"], tables["chart-bytes-per-status"]
    assert len(counts) == 30
    assert counts[day(11)] == {"queued": 0, "active": 0, "pending_delete": 0}
    assert counts[day(10)] == {"queued": 0, "active": 1, "pending_delete": 0}
    assert counts[day(5)] == {"queued": 0, "active": 2, "pending_delete": 0}
    assert counts[day(2)] == {"queued": 0, "active": 1, "pending_delete": 1}
    assert counts[day(0)] == {"queued": 1, "active": 1, "pending_delete": 1}
    # queued images hold no bytes: no such series
    assert sizes[day(10)] == {"active": 1000, "pending_delete": 0}
    assert sizes[day(3)] == {"active": 1500, "pending_delete": 0}
    assert sizes[day(0)] == {"active": 1000, "pending_delete": 500}


def test_dashboard_counts_uploads_and_deletions_per_day(seeded, client, admin_user):
    activity = index(client, admin_user)["chart-uploads-and-deletions"]
    assert activity[day(10)] == {"uploads": 1, "deletions": 0, "scrubs": 0}
    assert activity[day(5)] == {"uploads": 1, "deletions": 0, "scrubs": 0}
    assert activity[day(2)] == {"uploads": 0, "deletions": 1, "scrubs": 0}
    assert sum(sum(row.values()) for row in activity.values()) == 3


def test_dashboard_shows_the_scrub_timeline_by_due_day(seeded, client, admin_user):
    scrubs = index(client, admin_user)["chart-recycle-bin-scrubs-due"]
    # deleted two days ago with a five-day delay: due in three days
    assert scrubs == {day(-n): {"pending_delete": 1 if n == 3 else 0} for n in range(4)}


def test_dashboard_counts_an_overdue_scrub_today_and_far_ones_later(seeded, bob, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3600
    far = image_in(S.PENDING_DELETE, owner="bob")
    Image.objects.filter(pk=far.pk).update(size=7, deleted_at=timezone.now() + timedelta(days=90))
    today = timezone.localdate()
    assert dashboard.scrub_timeline(today) == [(today.isoformat(), 1, 500), ("later", 1, 7)]


def test_dashboard_ranks_owners_by_bytes(seeded, client, admin_user):
    owners = index(client, admin_user)["chart-top-owners-by-bytes"]
    assert list(owners.items()) == [("alice", {"bytes": 1000}), ("bob", {"bytes": 500})]


def test_dashboard_renders_accessible_svg(seeded, client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/").content.decode()
    assert page.count('<svg role="img" aria-labelledby="chart-') == 5
    assert "<title>" + day(10) + " · active: 1</title>" in page
    summary = f"Images per status, {day(29)} to {day(0)}; on {day(0)}: queued 1, active 1, "
    assert summary + "pending_delete 1.</desc>" in page
    assert "Top owners by bytes: alice 1000 bytes, bob 500 bytes.</desc>" in page
    assert f"Recycle bin: scrubs due: {day(-3)} 1.</desc>" in page
    assert f"Uploads and deletions, {day(29)} to {day(0)}; in all: uploads 2, deletions 1" in page
    assert 'id="image-summary"' in page  # the summary above stays


def test_dashboard_renders_an_empty_database(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/").content.decode()
    assert "Images per status: nothing to show." in page
    assert "Top owners by bytes: nothing to show." in page
    tables = Tables(page).tables
    assert tables["chart-images-per-status"] == {day(n): {} for n in range(29, -1, -1)}


def test_dashboard_is_hidden_from_staff_without_image_permissions(client, django_user_model):
    user = django_user_model.objects.create_user("stan", password="pw", is_staff=True)
    client.force_login(user)
    assert 'id="image-dashboard"' not in client.get("/admin/").content.decode()


def test_dashboard_query_count_does_not_grow_with_images(
    seeded, client, admin_user, django_assert_max_num_queries
):
    client.force_login(admin_user)
    for n in range(40):
        image = image_in(S.PENDING_DELETE, owner=f"owner{n}")
        seeded_history(image, [(timezone.now() - timedelta(days=n % 30), "", S.QUEUED, O.CREATE)])
    # 11 for the summary (its next scrub asks both the default delay and the rules)
    # and the charts, 4 for the scheduled-deprecation panel.
    with django_assert_max_num_queries(15):
        assert client.get("/admin/").status_code == 200


def test_image_page_draws_its_timeline(seeded, client, admin_user):
    client.force_login(admin_user)
    page = client.get(f"/admin/images/image/{seeded.pk}/change/").content.decode()
    timeline = page[page.index('id="image-timeline"') : page.index("</figure>")]
    assert "4 status changes from" in timeline
    assert "queued → saving → active → pending_delete" in timeline
    assert timeline.count('<rect class="bar s-') == 4
    # named where there is room: not queued and saving, which lasted no time
    assert timeline.count('class="segment"') == 2
    assert ">active</text>" in timeline and ">pending_delete</text>" in timeline
    assert "pending_delete from" in timeline and "active from" in timeline
    assert "(delete by seed)" in timeline


def test_image_page_without_history_says_so(client, admin_user):
    image = image_in(S.QUEUED)
    client.force_login(admin_user)
    page = client.get(f"/admin/images/image/{image.pk}/change/").content.decode()
    assert page.count("No status changes recorded.") == 2  # the timeline and the table


def test_bar_chart_nice_axis_top():
    assert [nice(v) for v in (0, 1, 3, 7, 11, 1999)] == [1, 1, 5, 10, 20, 2000]
    svg = bar_chart(Chart("Side by side", ["a", "b"], {"x": [1, 0], "y": [3, 0]}, stacked=False))
    assert svg.count('<rect class="bar') == 2


def test_dashboard_top_owners_are_the_ten_holding_most_bytes():
    for n in range(12):
        image = image_in(S.ACTIVE, owner=f"owner{n:02}")
        Image.objects.filter(pk=image.pk).update(size=100 * (n + 1))
    image_in(S.ACTIVE, owner="empty")  # holds no bytes: not ranked
    gone = image_in(S.DELETED, owner="gone")
    Image.objects.filter(pk=gone.pk).update(size=10**9)  # scrubbed: holds nothing now
    owners = dashboard.top_owners()
    assert [owner for owner, _, _ in owners] == [f"owner{n:02}" for n in range(11, 1, -1)]
    assert owners[0] == ("owner11", 1200, 1)

"""The retention rules' admin page (images.admin.retention) and the recycle bin's
scrub times under rules: what an administrator reads, and the rows left behind."""

import io
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.utils.html import strip_tags

from images import services
from images.models import Image, RetentionRule
from images.services.retention import retention_rule_save

pytestmark = pytest.mark.django_db

RULES = "/admin/images/retentionrule/"
BIN = "/admin/images/pendingdeleteimage/"
DAY = timedelta(days=1)


def _deleted(actor, **fields) -> Image:
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    image = services.image_create(actor=actor, **fields)
    image = services.image_upload(
        image=image, actor=actor, stream=io.BytesIO(b"bytes"), declared_size=5
    )
    return services.image_delete(image=image, actor=actor)


def _staff(django_user_model, username, *codenames):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def _locked_rule() -> RetentionRule:
    rule = RetentionRule(name="golden", tag="golden", retention=5 * DAY, locked=True)
    return retention_rule_save(rule=rule, actor="system")


def _form(rule: RetentionRule, **changes) -> dict:
    fields = {
        "name": rule.name,
        "description": rule.description,
        "owner": rule.owner,
        "tag": rule.tag,
        "visibility": rule.visibility,
        "retention": str(rule.retention),
        "_save": "Save",
    }
    if rule.locked:
        fields["locked"] = "on"
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not None}


def _plain(response) -> str:
    return " ".join(unescape(strip_tags(response.content.decode())).replace("\xa0", " ").split())


EDITOR = ["view_retentionrule", "add_retentionrule", "change_retentionrule", "delete_retentionrule"]


def test_admin_rule_added_moves_the_recycle_bins_scrub_time(client, alice, django_user_model):
    image = _deleted(alice, tags=["golden"])
    client.force_login(_staff(django_user_model, "ed", *EDITOR))

    rule = RetentionRule(name="golden", tag="golden", retention=7 * DAY)
    response = client.post(f"{RULES}add/", _form(rule))

    assert response.status_code == 302
    image.refresh_from_db()
    assert image.retained_until == image.deleted_at + 7 * DAY


def test_admin_locked_rule_shortening_is_refused_with_a_message(client, alice, django_user_model):
    rule = _locked_rule()
    image = _deleted(alice, tags=["golden"])
    client.force_login(_staff(django_user_model, "ed", *EDITOR))

    response = client.post(f"{RULES}{rule.pk}/change/", _form(rule, retention="1 00:00:00"))

    assert response.status_code == 200
    assert (
        "Retention rule 'golden' is locked; its retention cannot be shortened below 5 days, "
        "0:00:00 without the unlock permission." in _plain(response)
    )
    rule.refresh_from_db()
    image.refresh_from_db()
    assert (rule.retention, image.retained_until) == (5 * DAY, image.deleted_at + 5 * DAY)


def test_admin_locked_rule_unlocking_is_refused_with_a_message(client, django_user_model):
    rule = _locked_rule()
    client.force_login(_staff(django_user_model, "ed", *EDITOR))

    response = client.post(f"{RULES}{rule.pk}/change/", _form(rule, locked=None))

    assert "only holders of the unlock permission may unlock it." in _plain(response)
    assert RetentionRule.objects.get(pk=rule.pk).locked


def test_admin_locked_rule_shortening_is_allowed_with_the_permission(
    client, alice, django_user_model
):
    rule = _locked_rule()
    image = _deleted(alice, tags=["golden"])
    client.force_login(_staff(django_user_model, "kim", *EDITOR, "unlock_retention_rule"))

    response = client.post(f"{RULES}{rule.pk}/change/", _form(rule, retention="1 00:00:00"))

    assert response.status_code == 302
    rule.refresh_from_db()
    image.refresh_from_db()
    assert (rule.retention, image.retained_until) == (DAY, image.deleted_at + DAY)


def test_admin_locked_rule_delete_needs_the_permission(client, django_user_model):
    rule = _locked_rule()
    client.force_login(_staff(django_user_model, "ed", *EDITOR))
    assert client.get(f"{RULES}{rule.pk}/delete/").status_code == 403

    client.force_login(_staff(django_user_model, "kim", *EDITOR, "unlock_retention_rule"))
    response = client.post(f"{RULES}{rule.pk}/delete/", {"post": "yes"})

    assert (response.status_code, RetentionRule.objects.count()) == (302, 0)


def test_admin_bulk_delete_keeps_locked_rules_and_says_why(client, django_user_model):
    rule = _locked_rule()
    client.force_login(_staff(django_user_model, "ed", *EDITOR))
    selected = {"action": "delete_selected", "_selected_action": [rule.pk]}

    asked = client.post(RULES, selected)
    forced = client.post(RULES, {**selected, "post": "yes"})

    refusal = "have permission to delete the following types of objects: retention rule"
    assert refusal in _plain(asked)
    assert forced.status_code == 403
    assert RetentionRule.objects.filter(pk=rule.pk).exists()


def test_admin_rule_list_shows_blank_criteria_as_any(client, django_user_model):
    _locked_rule()
    client.force_login(_staff(django_user_model, "ed", *EDITOR))

    page = _plain(client.get(RULES))

    assert "goldenanygoldenany5 days, 0:00:00" in page  # cells run together once untagged


def test_recycle_bin_shows_rule_scrub_time_and_orders_by_it(client, admin_user, alice, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3 * 3600
    retention_rule_save(
        rule=RetentionRule(name="golden", tag="golden", retention=2 * DAY), actor="system"
    )
    kept = _deleted(alice, name="kept", tags=["golden"])
    plain = _deleted(alice, name="plain")
    client.force_login(admin_user)

    response = client.get(BIN)

    assert [image.pk for image in response.context["cl"].result_list] == [plain.pk, kept.pk]
    page = _plain(response)
    assert "1 day, 23 hours" in page or "2 days" in page
    assert "2 hours, 59 minutes" in page or "3 hours" in page

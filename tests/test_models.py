"""The lifecycle: the model's transitions are exactly DESIGN.md's table."""

import pytest
from django_fsm import TransitionNotAllowed, can_proceed

from images.enums import Status
from images.errors import InvalidInput, InvalidTransition
from images.models import Image
from tests.factories import ARGS, image_in

S = Status

# DESIGN.md, "The lifecycle": from → allowed targets (creation is tested in test_services).
LIFECYCLE = {
    S.QUEUED: {S.SAVING, S.ACTIVE, S.UPLOADING, S.IMPORTING, S.DELETED},
    S.SAVING: {S.ACTIVE, S.QUEUED, S.KILLED, S.DELETED},
    S.UPLOADING: {S.IMPORTING, S.QUEUED, S.DELETED},
    S.IMPORTING: {S.ACTIVE, S.QUEUED, S.DELETED},
    S.ACTIVE: {S.DEACTIVATED, S.PENDING_DELETE, S.DELETED},
    S.DEACTIVATED: {S.ACTIVE, S.PENDING_DELETE, S.DELETED},
    S.PENDING_DELETE: {S.ACTIVE, S.DEACTIVATED, S.DELETED},
    S.KILLED: {S.DELETED},
    S.DELETED: set(),
}

# Not a step of the lifecycle but its start for a record brought over from Glance
# (import_glance): a new, queued record takes the status its image had there.
MIGRATE = {S.QUEUED: set(S.values) - {S.QUEUED}}

TRANSITIONS = sorted({t.name for t in Image._meta.get_field("status").get_all_transitions(Image)})


def _targets(transition) -> set[str]:
    target = transition.target
    return set(getattr(target, "allowed_states", [target]))


def test_lifecycle_declared_transitions_equal_design_table():
    declared: dict[str, set[str]] = {status: set() for status in S.values}
    for transition in Image._meta.get_field("status").get_all_transitions(Image):
        if transition.name != "migrate":
            declared[transition.source] |= _targets(transition)
    assert declared == {status.value: targets for status, targets in LIFECYCLE.items()}


def test_migrate_goes_from_queued_to_every_other_status():
    declared = [
        t for t in Image._meta.get_field("status").get_all_transitions(Image) if t.name == "migrate"
    ]
    assert {t.source: _targets(t) for t in declared} == MIGRATE
    for status in MIGRATE[S.QUEUED]:
        image = Image()
        image.migrate(to=status)
        assert image.status == status


def test_migrate_refuses_queued_and_unknown_status():
    for status in (S.QUEUED, "frozen"):
        image = Image()
        with pytest.raises(InvalidInput, match="cannot be brought over"):
            image.migrate(to=status)
        assert image.status == S.QUEUED


@pytest.mark.django_db
@pytest.mark.parametrize("source", S.values)
@pytest.mark.parametrize("name", TRANSITIONS)
def test_lifecycle_each_transition_from_each_status(source, name):
    image = image_in(source, save=False)
    method = getattr(image, name)
    declared = [
        t for t in Image._meta.get_field("status").get_all_transitions(Image) if t.name == name
    ]
    targets = set().union(*(_targets(t) for t in declared if t.source == source))
    if not targets:
        assert not can_proceed(method)
        with pytest.raises(TransitionNotAllowed):
            method(**ARGS.get(name, dict)())
        assert image.status == source
        return
    assert targets <= (MIGRATE if name == "migrate" else LIFECYCLE)[S(source)]
    method(**ARGS.get(name, dict)())
    assert image.status in targets
    assert image.status != source  # no self-transitions
    image.save()
    image.refresh_from_db()
    assert image.status in targets


def test_status_cannot_be_assigned():
    image = Image()
    with pytest.raises(AttributeError, match="Direct status modification is not allowed"):
        image.status = S.ACTIVE
    assert image.status == S.QUEUED


@pytest.mark.parametrize("missing", ["disk_format", "container_format"])
def test_begin_upload_requires_formats(missing):
    image = image_in(S.QUEUED, save=False, **{missing: None})
    with pytest.raises(InvalidInput, match=f"Property {missing} must be set prior to saving data"):
        image.begin_upload(**ARGS["begin_upload"]())
    assert image.status == S.QUEUED


def test_activate_requires_formats():
    image = image_in(S.QUEUED, save=False, disk_format=None)
    with pytest.raises(InvalidInput, match="disk_format"):
        image.activate()
    assert image.status == S.QUEUED


def test_abort_upload_forgets_size_and_hashes():
    image = image_in(S.SAVING, save=False)
    image.size, image.checksum, image.os_hash_value = 10, "a" * 32, "b" * 128
    image.abort_upload()
    assert (image.status, image.size, image.checksum, image.os_hash_value) == (
        S.QUEUED,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("before", [S.ACTIVE, S.DEACTIVATED])
def test_restore_returns_to_status_before_delete(before):
    image = image_in(before, save=False)
    image.mark_pending_delete(**ARGS["mark_pending_delete"]())
    image.restore()
    assert image.status == before
    assert image.deleted_at is None


def test_restore_refused_once_scrub_started():
    image = image_in(S.PENDING_DELETE, save=False)
    image.scrub_started_at = image.deleted_at
    with pytest.raises(InvalidTransition, match="scrubber has begun"):
        image.restore()
    assert image.status == S.PENDING_DELETE

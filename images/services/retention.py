"""Recycle-bin retention rules: how long a deleted image stays restorable, per owner,
tag and visibility, in place of IMAGES_SCRUB_DELAY_SECONDS (EC2 Recycle Bin's rules).

Precedence: of the rules matching an image (every non-blank criterion of a rule
matches), the longest retention wins, as in EC2; it replaces the default delay even
when shorter. No matching rule: the default delay applies.

Why a column (`Image.retained_until`) rather than a query annotation: the scrubber
asks "which pending_delete images are due now" on every pass, across nodes, with
SKIP LOCKED batches. An annotation would evaluate every rule against every image of
the recycle bin (a join with the tags per rule) on each pass and could use no index;
a column answers it from the (status, retained_until) index. Rules are few and
change rarely, so the cost moves to a rule change: one UPDATE per rule over the
pending_delete rows. The column holds only a rule's deadline (NULL when no rule
matches) so that the default delay is still read from the settings at scrub time,
and a changed IMAGES_SCRUB_DELAY_SECONDS applies to images already in the bin.
"""

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, QuerySet

from images import policy
from images.enums import Status
from images.errors import Forbidden, InvalidInput
from images.models import Image, ImageTag, RetentionRule
from images.policy import Actor

# PostgreSQL advisory lock between deletes (shared) and rule changes (exclusive):
# a delete reading the rules while a rule change commits would otherwise fix an image's
# deadline by the old rules after the change's recompute had passed it by. SQLite
# serializes writing transactions anyway.
RULES_LOCK = 0x676C_7274  # "glrt"

# The criteria that say which images a rule covers: changing them on a locked rule
# could take its protection away from images, as shortening would.
CRITERIA = ("owner", "tag", "visibility")


def _matching(rule: RetentionRule, images: QuerySet[Image]) -> QuerySet[Image]:
    if rule.owner:
        images = images.filter(owner=rule.owner)
    if rule.visibility:
        images = images.filter(visibility=rule.visibility)
    if rule.tag:
        images = images.filter(pk__in=ImageTag.objects.filter(value=rule.tag).values("image"))
    return images


def _matches(rule: RetentionRule, image: Image, tags: set[str]) -> bool:
    return (
        (not rule.owner or rule.owner == image.owner)
        and (not rule.visibility or rule.visibility == image.visibility)
        and (not rule.tag or rule.tag in tags)
    )


def retention_for(image: Image) -> timedelta | None:
    """The longest retention of the rules matching this image, or None (the default
    delay applies). Two queries: the rules, the image's tags."""
    rules = list(RetentionRule.objects.all())
    if not rules:
        return None
    tags = set(image.tags.values_list("value", flat=True))
    matched = [rule.retention for rule in rules if _matches(rule, image, tags)]
    return max(matched, default=None)


def _lock_rules(*, shared: bool) -> None:
    """Call inside the transaction; the lock goes with it."""
    if connection.vendor == "postgresql":
        kind = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {kind}(%s)", [RULES_LOCK])


def retained_until(image: Image, deleted_at: datetime) -> datetime | None:
    """The end of this image's retention by the rules, if one matches, for a delete
    at `deleted_at`. Inside image_delete's transaction: holds the rules still until it
    commits (see RULES_LOCK)."""
    _lock_rules(shared=True)
    retention = retention_for(image)
    return None if retention is None else deleted_at + retention


def lock_refusal(
    actor: Actor, rule: RetentionRule | None, previous: RetentionRule | None
) -> tuple[str, str] | None:
    """Why this actor may not make this change to a locked rule, as (the field at
    fault, the reason), or None if they may. `previous` is the rule as stored (None
    for a new rule); `rule` None is its deletion (field "")."""
    if previous is None or not previous.locked or policy.can_unlock_retention_rule(actor):
        return None
    locked = f"Retention rule {previous.name!r} is locked"
    if rule is None:
        return "", f"{locked}; it cannot be deleted without the unlock permission."
    if not rule.locked:
        return "locked", f"{locked}; only holders of the unlock permission may unlock it."
    if rule.retention < previous.retention:
        return "retention", (
            f"{locked}; its retention cannot be shortened below {previous.retention} "
            "without the unlock permission."
        )
    for name in CRITERIA:
        if getattr(rule, name) != getattr(previous, name):
            return name, (f"{locked}; its {name} cannot be changed without the unlock permission.")
    return None


def _check(actor: Actor, rule: RetentionRule | None, previous: RetentionRule | None) -> None:
    verb = "delete" if rule is None else "change" if previous is not None else "add"
    if not policy.can_edit_retention_rules(actor, verb):
        raise Forbidden("You are not permitted to change retention rules.")
    if rule is not None and rule.retention < timedelta(0):
        raise InvalidInput("A retention cannot be negative.")
    refusal = lock_refusal(actor, rule, previous)
    if refusal:
        raise Forbidden(refusal[1])


def retention_rule_save(*, rule: RetentionRule, actor: Actor) -> RetentionRule:
    """Create or change a rule, refused (Forbidden) if it is locked and the change
    would weaken it without the permission; the recycle bin's deadlines follow in the
    same transaction."""
    with transaction.atomic():
        _lock_rules(shared=False)
        previous = None
        if rule.pk is not None:
            previous = RetentionRule.objects.select_for_update().filter(pk=rule.pk).first()
        _check(actor, rule, previous)
        rule.save()
        retention_recompute()
    return rule


def retention_rule_delete(*, rule: RetentionRule, actor: Actor) -> None:
    """Delete a rule (refused if locked, without the permission); the images it kept
    fall back to the other rules or the default delay."""
    with transaction.atomic():
        _lock_rules(shared=False)
        previous = RetentionRule.objects.select_for_update().filter(pk=rule.pk).first()
        if previous is None:
            return
        _check(actor, None, previous)
        previous.delete()
        retention_recompute()


def retention_recompute() -> int:
    """Set every pending_delete image's `retained_until` from the rules as they are:
    one UPDATE to clear, then one per rule, shortest retention first, so the longest
    matching one is written last and wins. Returns how many rules were applied."""
    binned = Image.objects.filter(status=Status.PENDING_DELETE)
    binned.update(retained_until=None)
    rules = list(RetentionRule.objects.order_by("retention", "id"))
    for rule in rules:
        _matching(rule, binned).update(retained_until=F("deleted_at") + rule.retention)
    return len(rules)

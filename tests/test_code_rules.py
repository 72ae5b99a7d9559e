"""The one-path rule, checked on the source: nothing but the model's transitions
writes an image's status (DESIGN.md, "Rules that hold everywhere").

The check reads the syntax tree of images/ and glance_site/ (migrations aside), so a
write split over several lines is found as well as a one-line one. A location's and a
member's status are theirs to write: a write whose receiver is a location or member
queryset, or whose value is a LocationStatus or MemberStatus, is allowed.
"""

import ast
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for p in (ROOT / "images").rglob("*.py") if "migrations" not in p.parts] + list(
    (ROOT / "glance_site").rglob("*.py")
)

# A location's or a member's status: the receiver (ImageLocation.objects,
# image.locations, location, member, ...) or the value (LocationStatus.DELETED) says so.
OTHER_RECEIVER = re.compile(r"location|member", re.I)
OTHER_ENUMS = {"LocationStatus", "MemberStatus"}
IMAGE_ENUM = {"Status", "S"}
# Calls that write the keyword arguments they are given.
WRITING_CALLS = {"update", "create", "get_or_create", "update_or_create", "Image"}
# Raw SQL that sets a status column (a WHERE status = ... is a read).
RAW_STATUS_SQL = re.compile(r"\bSET\b(?:(?!\bWHERE\b).)*?\"?\bstatus\"?\s*=", re.I | re.S)
OTHER_TABLES = re.compile(r"images_image(location|member)", re.I)


def _chain(node: ast.AST | None) -> list[str]:
    """The names along `a.b(...).c`, without the call arguments: ["a", "b", "c"]."""
    names = []
    while node is not None:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        else:
            names.append(getattr(node, "id", ""))
            node = None
    return names[::-1]


def _other(receiver: ast.AST | None, value: ast.AST | None = None) -> bool:
    """A location's or a member's status, by its receiver or by its value."""
    if any(OTHER_RECEIVER.search(name) for name in _chain(receiver)):
        return True
    return value is not None and any(
        isinstance(n, ast.Name) and n.id in OTHER_ENUMS for n in ast.walk(value)
    )


def _is_str(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_image_status(node: ast.AST | None) -> bool:
    """A literal status: "active", or Status.ACTIVE / S.ACTIVE."""
    if _is_str(node):
        return True
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in IMAGE_ENUM
    )


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _receiver(call: ast.Call) -> ast.AST | None:
    return call.func.value if isinstance(call.func, ast.Attribute) else None


def _status_in_dict(node: ast.AST | None) -> ast.AST | None:
    """The value under a "status" key of a dict display (defaults={...}, **{...})."""
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if _is_str(key) and key.value == "status":
                return value
    return None


def _call_writes(call: ast.Call) -> bool:
    name, receiver = _callee(call), _receiver(call)
    if name == "setattr" and len(call.args) >= 2 and _is_str(call.args[1]):
        value = call.args[2] if len(call.args) > 2 else None
        return call.args[1].value == "status" and not _other(call.args[0], value)
    if name == "bulk_update":
        fields = [n for arg in call.args[1:] for n in ast.walk(arg)] + [
            n for kw in call.keywords if kw.arg == "fields" for n in ast.walk(kw.value)
        ]
        return any(_is_str(n) and n.value == "status" for n in fields) and not _other(receiver)
    for kw in call.keywords:
        if kw.arg == "status":
            value = kw.value
        elif kw.arg in (None, "defaults"):  # **{"status": ...}, defaults={"status": ...}
            value = _status_in_dict(kw.value)
            if value is None:
                continue
        else:
            continue
        if _other(receiver, value):
            continue
        # A write call with any status, or a status as a string anywhere (use the enum).
        if name in WRITING_CALLS or _is_str(value):
            return True
    return False


def _assignment_writes(node: ast.Assign | ast.AugAssign | ast.AnnAssign) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    while any(isinstance(t, ast.Tuple | ast.List | ast.Starred) for t in targets):
        # `image.status, x = ...`; a subscript (`seen[status] = ...`) is not a target here.
        targets = [
            e
            for t in targets
            for e in (
                t.elts
                if isinstance(t, ast.Tuple | ast.List)
                else [t.value]
                if isinstance(t, ast.Starred)
                else [t]
            )
        ]
    for t in targets:
        if isinstance(t, ast.Attribute) and t.attr == "status" and not _other(t.value, node.value):
            return True
        if isinstance(t, ast.Name) and t.id == "status" and _is_image_status(node.value):
            return True
    return False


def status_writes(source: str) -> list[int]:
    """Line numbers of `source` that write an image's status outside a transition."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            found = _assignment_writes(node)
        elif isinstance(node, ast.Call):
            found = _call_writes(node)
        elif _is_str(node):
            found = bool(RAW_STATUS_SQL.search(node.value)) and not OTHER_TABLES.search(node.value)
        else:
            found = False
        if found:
            lines.append(node.lineno)
    return sorted(set(lines))


def test_status_written_only_by_transitions():
    offenders = []
    for path in SOURCES:
        source = path.read_text()
        lines = source.splitlines()
        for number in status_writes(source):
            offenders.append(f"{path.relative_to(ROOT)}:{number}: {lines[number - 1].strip()}")
    assert offenders == [], "A status is written outside the model's transitions:\n" + "\n".join(
        offenders
    )


@pytest.mark.parametrize(
    "code",
    [
        'image.status = "active"',
        "image.status = Status.ACTIVE",
        "self.status = S.KILLED",
        "image.status, other = Status.ACTIVE, 1",
        "x = image.status = Status.ACTIVE",
        "first, *image.status = rows",
        'status = "active"',
        "status = Status.ACTIVE",
        "Image.objects.filter(pk=pk).update(status=Status.ACTIVE)",
        "qs.update(status=target)",
        "Image.objects.filter(\n    pk=pk,\n).update(\n    status=Status.QUEUED,\n)",
        "Image.objects.filter(pk=pk).update(**{'status': Status.ACTIVE})",
        "Image.objects.update_or_create(pk=pk, defaults={'status': Status.ACTIVE})",
        "Image.objects.create(name='x', status=Status.ACTIVE)",
        "Image(name='x', status=Status.ACTIVE)",
        "Image.objects.filter(locations__status=LocationStatus.ACTIVE).update(status=target)",
        "image.status = pick(image.locations)",
        "Image.objects.bulk_update(images, ['status'])",
        "setattr(image, 'status', Status.ACTIVE)",
        'cursor.execute("UPDATE images_image SET status = %s WHERE id = %s", [s, pk])',
        "cursor.execute(\n    'UPDATE images_image '\n    'SET size = 0, status = %s'\n)",
        "cursor.execute(f'update {table} set \"status\" = %s', [s])",
        'Image.objects.filter(status="active")',  # a status as a string: use the enum
    ],
)
def test_status_written_only_by_transitions_catches(code):
    assert status_writes(textwrap.dedent(code)) != [], code


@pytest.mark.parametrize(
    "code",
    [
        "if image.status == Status.ACTIVE:\n    pass",
        "Image.objects.filter(status=Status.SAVING).update(upload_heartbeat_at=now)",
        "fresh.locations.filter(status=LocationStatus.ACTIVE).update(\n"
        "    status=LocationStatus.PENDING_DELETE\n)",
        "ImageLocation.objects.filter(pk__in=ids).update(status=LocationStatus.DELETED)",
        "ImageMember.objects.filter(pk=pk).update(status=status, updated_at=now)",
        "location.status = LocationStatus.DELETED",
        "member.status = status",
        "status = FSMField(default=Status.QUEUED, protected=True)",
        "return Response(body, status=code)",
        'body["status"] = image.status',
        'state[status] = "open"',
        "status = serializer.validated_data['status']",
        'cursor.execute("SELECT id FROM images_image WHERE status = %s", [s])',
        'cursor.execute("UPDATE images_image SET size = 0 WHERE status = %s", [s])',
        'cursor.execute("UPDATE images_imagelocation SET status = %s", [s])',
    ],
)
def test_status_written_only_by_transitions_allows(code):
    assert status_writes(textwrap.dedent(code)) == [], code

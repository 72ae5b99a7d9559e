"""The one-path rule, checked on the source: nothing but the model's transitions
writes an image's status."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for p in (ROOT / "images").rglob("*.py") if "migrations" not in p.parts] + list(
    (ROOT / "glance_site").rglob("*.py")
)

STATUS_WRITES = [
    re.compile(r"\bstatus\s*=\s*(Status|S)\.\w+\s*$"),  # plain assignment
    re.compile(r"Image\.objects[^\n]*\.update\([^)]*\bstatus="),  # queryset update
    re.compile(r"UPDATE\s+\w*image\w*\s+SET\s+status", re.IGNORECASE),  # raw SQL
    re.compile(r"\.status\s*=(?!=)"),  # attribute assignment
]


def test_status_written_only_by_transitions():
    offenders = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(p.search(code) for p in STATUS_WRITES):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []

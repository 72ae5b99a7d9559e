"""The benchmark's figures: rows of samples, budgets, the table and the JSON file."""

import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


class Results:
    def __init__(self, config: dict):
        self.rows: list[dict] = []
        self.budgets: list[dict] = []
        self.facts: dict = {}
        self.not_measured: list[str] = []  # and why, e.g. a missing comparison tool
        self.config = config

    def add(self, section: str, name: str, unit: str, samples, **extra) -> dict:
        samples = [float(s) for s in samples]
        row = {
            "section": section,
            "name": name,
            "unit": unit,
            "n": len(samples),
            "median": statistics.median(samples),
            "min": min(samples),
            "max": max(samples),
            "samples": samples,
            **extra,
        }
        self.rows.append(row)
        log(f"{section} {name}: median {row['median']:.2f} {unit} (n={len(samples)})")
        return row

    def get(self, section: str, name: str) -> dict | None:
        return next((r for r in self.rows if r["section"] == section and r["name"] == name), None)

    def budget(self, name: str, value, limit, holds: bool, note: str = "") -> None:
        self.budgets.append(
            {"budget": name, "value": value, "limit": limit, "holds": bool(holds), "note": note}
        )

    def skip(self, what: str) -> None:
        log(f"not measured: {what}")
        self.not_measured.append(what)

    def table(self) -> str:
        lines = [
            f"{'section':<9} {'measurement':<52} {'unit':<8} "
            f"{'median':>10} {'min':>10} {'max':>10} {'n':>3}"
        ]
        lines.append("-" * len(lines[0]))
        for r in self.rows:
            lines.append(
                f"{r['section']:<9} {r['name']:<52} {r['unit']:<8} "
                f"{r['median']:>10.2f} {r['min']:>10.2f} {r['max']:>10.2f} {r['n']:>3}"
            )
        lines.append("")
        lines.append(f"{'budget':<62} {'value':>10} {'limit':>12}  holds")
        lines.append("-" * 94)
        for b in self.budgets:
            value = b["value"] if isinstance(b["value"], str) else f"{b['value']:.3f}"
            limit = b["limit"] if isinstance(b["limit"], str) else f"{b['limit']:.3f}"
            mark = "yes" if b["holds"] else "NO"
            lines.append(f"{b['budget']:<62} {value:>10} {limit:>12}  {mark}")
            if b["note"]:
                lines.append(f"    {b['note']}")
        lines += [f"not measured: {what}" for what in self.not_measured]
        return "\n".join(lines)

    def write(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        body = {
            "when": stamp,
            "config": self.config,
            "facts": self.facts,
            "rows": self.rows,
            "budgets": self.budgets,
            "not_measured": self.not_measured,
        }
        path = RESULTS / f"bench-{stamp}.json"
        path.write_text(json.dumps(body, indent=2, default=str))
        (RESULTS / "latest.json").write_text(path.read_text())
        return path

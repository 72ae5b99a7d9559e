"""The benchmark's figures: rows of samples, budgets, the tables and the JSON file.

A row belongs to a server: "registry" (ours), "glance" (Glance 33, the same request
on the same machine in the same run) or "machine" (the limits: hashing, cp, cat,
nginx). The side-by-side table pairs each of our rows with Glance's row of the same
name, and with the machine's figure that bounds it (`limit=`, a limits row's name)."""

import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RATIO_UNITS = ("MiB/s", "CPU-s/GiB", "images/s", "ms", "s")


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

    def add(
        self,
        section: str,
        name: str,
        unit: str,
        samples,
        server: str = "registry",
        limit: tuple[str, str] | None = None,
        **extra,
    ) -> dict:
        samples = [float(s) for s in samples]
        row = {
            "section": section,
            "name": name,
            "server": server,
            "limit": limit,
            "unit": unit,
            "n": len(samples),
            "median": statistics.median(samples),
            "min": min(samples),
            "max": max(samples),
            "samples": samples,
            **extra,
        }
        self.rows.append(row)
        log(f"{server} {section} {name}: median {row['median']:.2f} {unit} (n={len(samples)})")
        return row

    def get(self, section: str, name: str, server: str = "registry") -> dict | None:
        return next(
            (
                r
                for r in self.rows
                if r["section"] == section and r["name"] == name and r["server"] == server
            ),
            None,
        )

    def median(self, section: str, name: str, server: str = "registry") -> float | None:
        row = self.get(section, name, server)
        return row["median"] if row else None

    def budget(self, name: str, value, limit, holds: bool, note: str = "") -> None:
        self.budgets.append(
            {"budget": name, "value": value, "limit": limit, "holds": bool(holds), "note": note}
        )

    def skip(self, what: str) -> None:
        log(f"not measured: {what}")
        self.not_measured.append(what)

    def table(self) -> str:
        lines = [
            f"{'section':<9} {'server':<8} {'measurement':<52} {'unit':<9} "
            f"{'median':>9} {'min':>9} {'max':>9} {'n':>3}"
        ]
        lines.append("-" * len(lines[0]))
        for r in self.rows:
            lines.append(
                f"{r['section']:<9} {r['server']:<8} {r['name']:<52} {r['unit']:<9} "
                f"{r['median']:>9.2f} {r['min']:>9.2f} {r['max']:>9.2f} {r['n']:>3}"
            )
        lines.append("")
        lines += self.side_by_side()
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

    def side_by_side(self) -> list[str]:
        """Medians of ours and Glance's, their ratio, and each beside the machine's
        figure that bounds it (the limits rows first, as they are)."""
        head = (
            f"{'section':<9} {'measurement':<52} {'unit':<9} {'registry':>9} {'Glance':>9} "
            f"{'reg/Gl':>7} {'limit':>9} {'reg/lim':>7} {'Gl/lim':>7}"
        )
        lines = [
            "Side by side: medians; reg/Gl = registry / Glance (for s, ms and CPU-s/GiB lower",
            "is better); limit = the machine's own figure for the same bytes; '-' = none.",
            head,
            "-" * len(head),
        ]
        for r in self.rows:
            if r["server"] == "machine":
                lines.append(
                    f"{r['section']:<9} {r['name']:<52} {r['unit']:<9} {'':>9} {'':>9} "
                    f"{'':>7} {r['median']:>9.2f}"
                )
        for r in self.rows:
            if r["server"] != "registry":
                continue
            glance = self.median(r["section"], r["name"], "glance")
            limit = self.median(*r["limit"], "machine") if r["limit"] else None
            ours = r["median"]
            # A ratio of memory growths near zero, or of query counts, says nothing.
            ratio = _ratio(ours, glance) if r["unit"] in RATIO_UNITS else f"{'':>7}"
            lines.append(
                f"{r['section']:<9} {r['name']:<52} {r['unit']:<9} {ours:>9.2f} "
                f"{_num(glance, 9)} {ratio} {_num(limit, 9)} "
                f"{_ratio(ours, limit)} {_ratio(glance, limit)}"
            )
        return lines

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


def _num(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return f"{'-':>7}"
    return f"{a / b:>7.2f}"

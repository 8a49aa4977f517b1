"""Write the figures of the last reliability run into docs/reliability.md.

`make reliability` runs the suite (each scenario writes var/reliability/figures/<name>.json and
pytest writes var/reliability/junit.xml), then `python -m tests.reliability.report` replaces the
part of docs/reliability.md between the `figures` markers with tables made from those files.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "var" / "reliability" / "figures"
JUNIT = ROOT / "var" / "reliability" / "junit.xml"
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"

# The order and grouping of the tables; anything else recorded goes under "Other".
GROUPS = {
    "Duplicates and races": [
        "duplicate_ipns",
        "duplicate_wallet_notifications",
        "duplicate_transfers",
        "collection_vs_vietqr",
    ],
    "Faults": [
        "worker_sigkill",
        "worker_sigkill_wallets",
        "pool_sigkill",
        "redis_outage",
        "db_cut_mid_callback",
        "db_cuts_during_burst",
    ],
    "Hostile input": [
        "schemathesis_public",
        "schemathesis_collection",
        "hypothesis_ipn",
        "hypothesis_transfers",
    ],
    "Logs": ["logs_masked"],
}
COLUMNS = ("messages_sent", "duplicates", "faults_injected", "lost", "doubled", "seconds")
STANDARD = {"name", "title", "recorded_at", "integrity", *COLUMNS}


def _figures() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(FIGURES.glob("*.json"))}


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            ", ".join(
                f"{key} ({_value(item)})" if isinstance(item, dict) else f"{key}: {item}"
                for key, item in value.items()
            )
            or "none"
        )
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    return str(value)


def _details(data: dict[str, Any]) -> str:
    skipped = STANDARD | {"inbound_messages", "settled_payments", "operations"}
    return "; ".join(
        f"{key.replace('_', ' ')}: {_value(value)}"
        for key, value in data.items()
        if key not in skipped
    )


def _table(names: list[str], figures: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| scenario | messages sent | duplicates | faults injected | lost | doubled | time (s) "
        "| check_integrity | details |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name in names:
        data = figures.get(name)
        if data is None:
            lines.append(f"| `{name}` | not run | | | | | | | |")
            continue
        cells = [str(data.get(column, "")) for column in COLUMNS]
        lines.append(
            f"| {data['title']} | " + " | ".join(cells) + f" | {data.get('integrity', '')} | "
            f"{_details(data)} |"
        )
    return lines


def _run_summary() -> list[str]:
    if not JUNIT.exists():
        return ["No pytest report found (var/reliability/junit.xml)."]
    root = ET.parse(JUNIT).getroot()  # noqa: S314 - written by our own pytest run
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    tests, failures = int(suite.get("tests", 0)), int(suite.get("failures", 0))
    errors, skipped = int(suite.get("errors", 0)), int(suite.get("skipped", 0))
    failed = [
        f"`{case.get('name')}`"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    lines = [
        f"Last run: {suite.get('timestamp', '?')[:19].replace('T', ' ')}, "
        f"{tests} tests, {tests - failures - errors - skipped} passed, {failures} failed, "
        f"{errors} errors, in {float(suite.get('time', 0)):.0f} s on {os.cpu_count()} CPU cores "
        f"(Python {platform.python_version()}).",
    ]
    if failed:
        lines.append("")
        lines.append("Failed: " + ", ".join(failed) + ".")
    return lines


def render() -> str:
    figures = _figures()
    lines = [START, "", *_run_summary(), ""]
    listed = set()
    for group, names in GROUPS.items():
        lines += [f"**{group}**", "", *_table(names, figures), ""]
        listed.update(names)
    others = [name for name in figures if name not in listed]
    if others:
        lines += ["**Other**", "", *_table(others, figures), ""]
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    text = DOC.read_text()
    if START not in text or END not in text:
        print(f"{DOC} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    before, rest = text.split(START, 1)
    _old, after = rest.split(END, 1)
    DOC.write_text(before + render() + after)
    print(f"figures of {len(_figures())} scenario(s) written to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

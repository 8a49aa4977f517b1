"""python -m bench [name ...]: run the benchmarks and write docs/benchmarks.md.

Every figure is measured against a baseline taken in the same run on the same machine (the
machine is shared and noisy), and reported as medians and ratios.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import re
import time
import traceback

from bench.common import ROOT, Section, machine, setup_django

BENCHMARKS = ("qr", "import", "export", "lookup", "settlement", "statement", "reminders")
OUTPUT = ROOT / "docs" / "benchmarks.md"


MARKER = "<!-- bench:{} -->"


def _section(name: str, section: Section) -> str:
    verdict = {True: "target met", False: "target missed", None: ""}[section.passed]
    lines = [MARKER.format(name), f"## {section.title}" + (f" — {verdict}" if verdict else ""), ""]
    lines += [
        f"Command: `{section.command}`; measured "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "",
    ]
    if section.rows:
        lines += ["| measure | value | against baseline | target |", "| --- | --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in section.rows]
        lines.append("")
    lines += [f"{note}" if note.startswith(("-", "|")) else f"- {note}" for note in section.notes]
    lines.append("")
    return "\n".join(lines)


def _earlier_sections() -> dict[str, str]:
    """The sections of the document as it stands, by benchmark name."""
    if not OUTPUT.exists():
        return {}
    text = OUTPUT.read_text(encoding="utf-8")
    found = re.split(r"^<!-- bench:(\w+) -->\n", text, flags=re.MULTILINE)
    return {
        # Without the blank lines it ended with: each rewrite would add one more.
        name: MARKER.format(name) + "\n" + body.rstrip("\n") + "\n"
        for name, body in zip(found[1::2], found[2::2], strict=True)
    }


def _render(sections: dict[str, str], ran: list[str], seeded: float | None, started: float) -> str:
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m bench`), which seeds the benchmark database with the "
        "whole province when it is not there yet (`seed_demo --customers 467636`: 467,636 "
        "customers, 12 months, ~5.6 million bills and ~5.6 million payments), then runs each "
        "benchmark against a baseline measured in the same run. `python -m bench NAME` re-runs "
        "one benchmark and replaces its section only.",
        "",
        f"- last run: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{(time.monotonic() - started) / 60:.1f} minutes, benchmarks {', '.join(ran)}",
    ]
    lines += [f"- {name}: {value}" for name, value in info.items()]
    if seeded is not None:
        lines.append(f"- seeding the province took {seeded:.0f} s in this run")
    lines.append("")
    lines += [sections[name] for name in BENCHMARKS if name in sections]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    options = parser.parse_args()
    unknown = set(options.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    from bench.province import ensure_province

    seeded = ensure_province()
    setup_django()
    ran = options.names or list(BENCHMARKS)
    sections = _earlier_sections() if options.names else {}
    for name in ran:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        try:
            section = module.run()
        except Exception:
            section = Section(name, f"python -m bench {name}", passed=False)
            section.notes.append("failed:\n\n```\n" + traceback.format_exc() + "```")
        sections[name] = _section(name, section)
        for row in section.rows:
            print("   ", " | ".join(row), flush=True)
    text = _render(sections, ran, seeded, started)
    if options.no_write:
        print(text)
    else:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()

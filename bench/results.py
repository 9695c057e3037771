"""bench/RESULTS.md holds one section per benchmark; each benchmark rewrites only its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results\n\nEach section is written by the benchmark it names; rerun it to refresh.\n"


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or add) the section headed `## name`, leaving the others as they are."""
    text = path.read_text() if path.exists() else TITLE
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def save_run(folder: Path, stem: str, report: dict, name: str, body: str, results: Path | None) -> None:
    """A run's report as `folder/stem.json` and its section `## name` alone as `folder/RESULTS.md` (what a device
    call brings back), and the section in `results` too, unless that is None."""
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (folder / "RESULTS.md").write_text(f"## {name}\n\n{body}")
    if results is not None:
        write_section(name, body, results)

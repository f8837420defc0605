"""The README's sections, served to the console's page (the appliance is offline: the operator's
browser may not reach any copy of the docs but this one). Read from the checkout the appliance
runs from; absent from a bare wheel install, which the page then says."""

from __future__ import annotations

from pathlib import Path

import firmware_app

README = Path(firmware_app.__file__).resolve().parent.parent / "README.md"


def slug(heading: str) -> str:
    return "-".join(heading.lower().split())


def readme_section(name: str, readme: Path = README) -> str | None:
    """The `## ` section whose heading's slug is `name` ("provenance"), heading included; None without one."""
    try:
        lines = readme.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError:
        return None
    found: list[str] = []
    for line in lines:
        if line.startswith("## "):
            if found:
                break
            if slug(line[3:]) == name:
                found.append(line)
        elif found:
            found.append(line)
    return "".join(found) or None

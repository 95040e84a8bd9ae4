"""Print ``name[extras]==floor`` for every requirement of pyproject.toml (dependencies and
optional dependencies), one per line: the lowest versions the package allows.

A requirement without a ``>=`` floor is an error: every dependency must have a floor that
.ci/check_floors.sh can install. Self-references (``internal-rl[...]``) are skipped, and so
are the names given with --skip (torch: its floor's PyPI wheel is a CUDA build).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tomllib

_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)\s*$")


def floors(pyproject: Path, skip: set[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins, problems = {}, []
    for req in requirements:
        if re.split(r"[\[<>=!~;\s]", req, maxsplit=1)[0] in (project["name"], *skip):
            continue
        match = _REQUIREMENT.match(req)
        if match is None:
            problems.append(req)
            continue
        name, extras, floor = match.groups()
        pins[name] = f"{name}{extras or ''}=={floor}"
    if problems:
        sys.exit(f"requirements without a plain '>=' floor: {problems}")
    return sorted(pins.values())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path,
                        default=Path(__file__).resolve().parent.parent / "pyproject.toml")
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args()
    print("\n".join(floors(args.pyproject, set(args.skip))))

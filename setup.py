"""Package discovery for the one-namespace layout (metadata lives in pyproject.toml).

The top-level folders drivers/, skills/ and calibration/ are the subpackages rmskill.drivers,
rmskill.skills and rmskill.calibration; every folder below them with an __init__.py is found, so a
new backend or skill needs no edit here.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
MAPPED = {"rmskill": "rmskill", "rmskill.drivers": "drivers", "rmskill.skills": "skills",
          "rmskill.calibration": "calibration"}


def packages() -> list[str]:
    found = []
    for name, folder in MAPPED.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.append(".".join((name, *rel)))
    return found


setup(packages=packages(), package_dir=MAPPED)

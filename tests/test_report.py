"""``rmskill report``: a self-contained page of plots of a fine-tuning run, PNGs beside it."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib", reason="needs the 'plot' extra (matplotlib)")

from rmskill.errors import ConfigError
from rmskill.report import report
from runs import make_run


def test_report_page_embeds_its_figures(tmp_path):
    run = make_run(tmp_path / "run", episodes=6)
    data = report(run, tmp_path / "out" / "r.html")
    page = (tmp_path / "out" / "r.html").read_text()
    names = {p.rsplit("/", 1)[-1] for p in data["figures"]}
    assert {"success.png", "error.png", "reward.png", "force.png", "groups.png"} <= names
    assert page.count("data:image/png;base64,") == len(names)
    assert all((tmp_path / "out" / "r_files" / n).is_file() for n in names)
    assert data["success (all)"] == "50%" and "plate_placement on sim-ur5e" in page


def test_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="not a fine-tuning run"):
        report(tmp_path)

"""`make demo`'s month, shortened to a week, over a moto server on 127.0.0.1: the vault's section and row show
the copies the vault made of what production shared, and those copies survive production deleting every
snapshot it can."""

from __future__ import annotations

import re
import urllib.request

import pytest

from demo import report, scenario
from demo.simulate import simulate

DAYS = 8


@pytest.fixture
def week(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", "10000000")
    monkeypatch.setattr(scenario, "DAYS", DAYS)
    for name, value in scenario.function_environment().items():  # as `python -m demo` sets them
        monkeypatch.setenv(name, value)
    with urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")):
        pass
    return moto_server


@pytest.mark.filterwarnings("ignore:Dimension 'deployment' has already been added")
def test_the_vaults_copies_are_shown_and_survive_the_production_wipe(week: str) -> None:
    results = simulate(week)
    text = report.render(results)
    page = report.timeline_html(results, {})

    before, after = results.vault_copies
    assert results.wipe is not None and results.wipe[1][scenario.REGION] > 0  # production lost its snapshots
    assert len(before) == 2 * 8 and after == before  # orders' and billing's daily copies, every one still there
    assert {copy.split("-")[0] for copy in after} == {"orders", "billing"}
    section = text[text.index("== A vault in another account") :]
    for cluster in ("orders", "billing"):
        counts = re.search(rf"^{cluster} \(source .*\n  shared  (\d+) .*\n  copies  (\d+) started", section, re.M)
        assert counts is not None and int(counts[1]) == int(counts[2]) == DAYS + 1
    assert f"The vault held {len(before)} copies then; after its 8 runs since it holds {len(before)}: all still" in (
        section.replace("\n", " ")
    )
    assert page.count("orders -&gt; vault") == 1 and page.count("billing -&gt; vault") == 1
    assert "production wiped" in page

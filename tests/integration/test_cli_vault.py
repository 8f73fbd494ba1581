"""The CLI on a vault deployment's settings (SNAPSHOT_VAULT set): `run` runs the vault as its handler does,
`plan` lists the copies it would start and delete and why, `status` shows per source and cluster the newest
copy, its age and the copies in flight. Through cli.main against the vault world of test_vault (two accounts
behind the fidelity layer, one simulated clock), with the operator's clients attached to the same layers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler import cli, config
from snapshot_scheduler.adapters import rds as rds_adapter

from tests.integration.scenario import fresh_rds, moto_once
from tests.integration.test_vault import DAY, PROD, START, VAULT_REGION, World, copy_name, slot
from tests.support.harness import REGION, scheduled_lambda

SOURCE = f"{PROD}/{REGION}"
SHARE = f"arn:aws:rds:{REGION}:{PROD}:cluster-snapshot:"

pytestmark = pytest.mark.filterwarnings("ignore:Dimension 'deployment' has already been added")


@pytest.fixture(scope="module", autouse=True)
def moto_module() -> Iterator[None]:
    with moto_once():
        yield


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.kms.models import kms_backends  # noqa: PLC0415

    for name in (*config.ENV_VARS, config.VAULT, "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    fresh_rds()
    kms_backends.reset()


def vault_cli(
    capsys: pytest.CaptureFixture[str], world: World, at: datetime, *argv: str, **setting: Any
) -> tuple[int, str]:
    """The CLI at `at` with the vault function's environment, through the vault's layers."""
    env = {
        "SNAPSHOT_DEPLOYMENT": "vault",
        "SNAPSHOT_VAULT": json.dumps({**world.setting, **setting}),
        "AWS_DEFAULT_REGION": VAULT_REGION,
    }
    world.clock.advance_to(at)  # type: ignore[attr-defined]
    capsys.readouterr()
    with scheduled_lambda(world.vault, env=env), pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_client", rds_adapter.build_client)  # the harness's: the layer attached
        patch.setattr(cli, "wall_clock", lambda: at)
        code = cli.main(["--region", VAULT_REGION, *argv, "--at", at.isoformat()])
    return code, capsys.readouterr().out


def squeezed(text: str) -> str:
    return re.sub(r" {2,}", " ", text)


def by_cluster(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["cluster"]: row for row in rows}


def test_plan_status_and_run_of_a_vault_copy_what_is_shared_as_its_handler_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two clusters shared daily and copied by the vault for three days, then day 3's shares not yet copied
    world = World(copying_for=timedelta(hours=2))
    world.cluster("orders")
    world.cluster("billing")
    for n in range(3):
        world.day(n, vault_hours=(2,))
    world.source_run(START + 3 * DAY)
    at = START + 3 * DAY + timedelta(hours=2)  # 05:05

    # When an operator asks for status and plan, runs the vault dry, then for real, then asks status again
    status_code, status_json = vault_cli(capsys, world, at, "status", "--json")
    _, status_text = vault_cli(capsys, world, at, "status")
    plan_code, plan_json = vault_cli(capsys, world, at, "plan", "--json")
    _, plan_text = vault_cli(capsys, world, at, "plan")
    dry_code, dry_text = vault_cli(capsys, world, at, "run", "--dry-run")
    copies_before_run = world.copies()
    run_code, run_text = vault_cli(capsys, world, at, "run")
    _, after_json = vault_cli(capsys, world, at + timedelta(hours=1), "status", "--json")
    _, after_text = vault_cli(capsys, world, at + timedelta(hours=1), "status")

    # Then status shows each source's cluster with its newest copy and its age (from its slot), all in order
    status = json.loads(status_json)
    assert status_code == 0 and status["attention"] is False
    rows = by_cluster(status["copies"])
    assert rows["orders"]["source"] == SOURCE
    assert rows["orders"]["newest_copy"] == copy_name("orders", slot(2))
    assert rows["orders"]["age_seconds"] == 26 * 3600 + 5 * 60  # day 2 03:00 to day 3 05:05
    assert (rows["orders"]["state"], rows["orders"]["copies"], rows["orders"]["in_flight"]) == ("ok", 3, [])
    (source,) = status["sources"]
    assert (source["source"], source["silent"], source["newest_share_slot"]) == (
        SOURCE,
        False,
        slot(3).isoformat(),
    )
    assert f"{SOURCE} orders ok {copy_name('orders', slot(2))} 1d 2h 3" in squeezed(status_text)
    # ... plan lists the two copies a run would start, from which share and why
    assert plan_code == 0
    groups = {g["cluster"]: g for g in json.loads(plan_json)["groups"]}
    (copy,) = groups["orders"]["copies"]
    assert copy["snapshot"] == copy_name("orders", slot(3))
    assert copy["share"] == SHARE + "orders-20260304-0300"
    assert copy["order"] in (1, 2) and copy["defer"] is None and groups["orders"]["delete"] == []
    assert [k["snapshot"] for k in groups["orders"]["keep"]] == [copy_name("orders", slot(n)) for n in (2, 1, 0)]
    assert (
        f"copy {copy_name('orders', slot(3))} from {SHARE}orders-20260304-0300 (the newest share of the vault "
        "slot 2026-03-04 03:00 UTC; no copy of it yet" in squeezed(plan_text)
    )
    # ... the dry run changes nothing and says what it would do; the run starts both copies, exit 0
    assert dry_code == 0 and "(dry run: nothing was changed)" in dry_text
    assert "copies: 2 would be started, 0 would be deleted, 0 deferred" in dry_text
    assert copies_before_run == {copy_name(c, slot(n)): "available" for c in ("orders", "billing") for n in range(3)}
    assert run_code == 0
    assert f"copy started {SOURCE} orders {copy_name('orders', slot(3))} from {SHARE}orders-20260304-0300" in (
        squeezed(run_text)
    )
    assert world.copies()[copy_name("orders", slot(3))] == "copying"
    # ... and status an hour later shows the copies in flight with their progress
    after = by_cluster(json.loads(after_json)["copies"])
    assert after["orders"]["in_flight"][0]["snapshot"] == copy_name("orders", slot(3))
    assert after["orders"]["in_flight"][0]["progress"] == 50
    assert f"{copy_name('orders', slot(3))} 50%" in after_text


def test_a_vault_run_that_defers_a_copy_exits_1_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    # Given six clusters' shares and room for five copies in flight
    world = World()
    for n in range(6):
        world.cluster(f"db{n}")
    world.source_run(START)

    # When the operator runs the vault
    code, out = vault_cli(capsys, world, START + timedelta(hours=2), "run", "--json")

    # Then five copies start, the sixth is deferred for the copy limit, and the run is not complete
    report = json.loads(out)
    assert code == 1 and report["complete"] is False
    assert len(report["vault"]["started"]) == 5
    (deferred,) = report["vault"]["deferred"]
    assert deferred["code"] == "copy-limit" and deferred["source"] == SOURCE
    assert len(world.copies()) == 5


def test_plan_status_and_run_show_copies_an_edit_of_the_vaults_policy_would_delete_as_pending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given seven daily copies kept by keep-daily=7 keep-weekly=4, and the vault redeployed with keep-last=1
    world = World()
    world.cluster("orders")
    for n in range(7):
        world.day(n, vault_hours=(2,))
    at = START + 7 * DAY
    edited = {"policy": "every=1d keep-last=1"}

    # When the operator asks for plan and status, and runs the vault
    _, plan_json = vault_cli(capsys, world, at, "plan", "--json", **edited)
    _, plan_text = vault_cli(capsys, world, at, "plan", **edited)
    status_code, status_json = vault_cli(capsys, world, at, "status", "--json", **edited)
    _, status_text = vault_cli(capsys, world, at, "status", **edited)
    run_code, run_text = vault_cli(capsys, world, at, "run", **edited)

    # Then plan deletes none of the six older copies and lists them as pending, with what keeps them
    (group,) = json.loads(plan_json)["groups"]
    doomed = sorted(copy_name("orders", slot(n)) for n in range(6))
    assert group["delete"] == []
    assert sorted(p["snapshot"] for p in group["pending"]) == doomed
    assert {p["kept_by"] for p in group["pending"]} == {"every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4"}
    assert "pending vault policy changed: 6 copies that" in squeezed(plan_text)
    # ... status needs attention (exit 1) and says so
    (row,) = json.loads(status_json)["copies"]
    assert status_code == 1 and (row["pending"], row["attention"]) == (6, True)
    assert "vault policy changed: 6 copies" in status_text
    # ... and the run deletes none of them and reports them as pending
    assert len(world.copies()) == 7
    assert run_code == 0
    assert squeezed(run_text).count("copy pending") == 6
    assert "6 copy deletions caused by a change of the vault's policy wait for the grace" in run_text

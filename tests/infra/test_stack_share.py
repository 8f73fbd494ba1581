"""A DR target that is an account (a vault) in the stack: the context validated by the engine's rules, the
function's environment, and the role's share statements evaluated as IAM would (tests/infra/iam_model.py):
share and record shares only on our snapshots, never touch a hold, describe keys, copy nothing there."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from snapshot_scheduler import config as engine_config
from snapshot_scheduler import naming, tags
from snapshot_scheduler.adapters import kms, rds

from infra.config import ConfigError, Settings
from tests.infra import iam_model
from tests.infra.synthesis import Synthesized, synth
from tests.infra.test_stack_iam import FOREIGN, actions, deletable_after_some_allowed_tagging, function_statements

VAULT = "222222222222"
TARGETS = {
    "vault": {"account": VAULT, "region": "eu-central-1", "shareHours": 48},
    "dr-west": {"region": "us-west-2"},
}
RDS = "arn:aws:rds:us-east-1:123456789012"  # the pseudo parameters as iam_model renders them
SLOT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
OURS = "orders-20261110-0300"
MARKED = {tags.MARKER: "SnapshotScheduler"}  # the default deployment (the stack name)
SHARED = "snapshot-scheduler:shared-vault"
FOLD = pytest.mark.parametrize("fold_case", [False, True], ids=["keys-case-sensitive", "keys-case-insensitive"])


@pytest.fixture(scope="module")
def share_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth({"drTargets": TARGETS}, outdir=tmp_path_factory.mktemp("share"))


@pytest.fixture(scope="module")
def region_only_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {"drTargets": {"dr-west": {"region": "us-west-2"}}}
    return synth(context, outdir=tmp_path_factory.mktemp("region-only"))


def request(action: str, identifier: str, snapshot_tags: dict[str, str], keys: dict[str, str] | None = None) -> Any:
    return iam_model.Request(action, f"{RDS}:cluster-snapshot:{identifier}", snapshot_tags, keys or {})


def may(synthesized: Synthesized, req: iam_model.Request, *, fold_case: bool = False) -> bool:
    return iam_model.allowed(function_statements(synthesized), req, fold_case=fold_case)


def test_the_function_environment_carries_the_account_target_as_the_engine_reads_it(share_synth: Synthesized) -> None:
    (function,) = [
        f for i, f in share_synth.resources("AWS::Lambda::Function").items() if i.startswith("BackupFunction")
    ]
    settings = engine_config.Settings.from_env(function["Properties"]["Environment"]["Variables"])
    vault = settings.dr_targets["vault"]

    assert (vault.account, vault.region, vault.share_for.total_seconds(), vault.kms_key) == (
        VAULT,
        "eu-central-1",
        48 * 3600,
        None,
    )
    assert not settings.dr_targets["dr-west"].shares


def test_a_target_naming_the_stacks_own_account_fails_synth() -> None:
    with pytest.raises(ConfigError, match="drTargets") as raised:
        Settings.from_context(
            {
                "drTargets": {"vault": {"account": "111111111111", "region": "us-east-1"}},
                "environments": [{"account": "111111111111", "region": "us-east-1"}],
            }
        )
    assert "where the stack is deployed" in str(raised.value)


def test_the_share_actions_are_granted_only_with_an_account_target(
    share_synth: Synthesized, region_only_synth: Synthesized, default_synth: Synthesized
) -> None:
    def granted(synthesized: Synthesized) -> set[str]:
        return {a for s in function_statements(synthesized) if s["Effect"] == "Allow" for a in actions(s)}

    shares = set(rds.SHARE_IAM_ACTIONS) | set(kms.IAM_ACTIONS)
    assert shares <= granted(share_synth)
    assert not (set(rds.SHARE_IAM_ACTIONS) & granted(region_only_synth))
    assert not (shares & granted(default_synth))
    rds_granted = {a for a in granted(share_synth) if a.startswith("rds:")}
    assert rds_granted == set(rds.IAM_ACTIONS) | set(rds.DR_IAM_ACTIONS) | set(rds.SHARE_IAM_ACTIONS)


@FOLD
def test_only_our_snapshots_may_be_shared(share_synth: Synthesized, fold_case: bool) -> None:
    share = "rds:ModifyDBClusterSnapshotAttribute"

    assert may(share_synth, request(share, OURS, MARKED), fold_case=fold_case)
    assert may(share_synth, request(share, OURS, {**MARKED, "snapshot-hold": "true"}), fold_case=fold_case)
    assert not may(share_synth, request(share, OURS, {tags.MARKER: "other"}), fold_case=fold_case)
    assert not may(share_synth, request(share, OURS, {}), fold_case=fold_case)
    assert not may(share_synth, request(share, "orders-before-migration", MARKED), fold_case=fold_case)
    other_region = iam_model.Request(share, f"arn:aws:rds:us-west-2:123456789012:cluster-snapshot:{OURS}", MARKED)
    assert not may(share_synth, other_region, fold_case=fold_case)


@FOLD
def test_only_the_share_tags_may_be_added_or_removed_and_never_a_hold(
    share_synth: Synthesized, fold_case: bool
) -> None:
    record = {SHARED: "2026-11-10T04:05:00Z"}
    for action in ("rds:AddTagsToResource", "rds:RemoveTagsFromResource"):
        assert may(share_synth, request(action, OURS, MARKED, record), fold_case=fold_case)
        assert not may(share_synth, request(action, OURS, {tags.MARKER: "other"}, record), fold_case=fold_case)
        assert not may(share_synth, request(action, OURS, MARKED, {**record, "snapshot-hold": ""}), fold_case=fold_case)
        assert not may(share_synth, request(action, OURS, MARKED, {"Snapshot-Hold": ""}), fold_case=fold_case)
    remove = "rds:RemoveTagsFromResource"
    for key in (tags.MARKER, tags.SLOT, tags.CLUSTER, "snapshot-hold", "owner"):
        assert not may(share_synth, request(remove, OURS, {**MARKED, "snapshot-hold": "true"}, {key: ""}))
    assert not may(share_synth, request(remove, OURS, MARKED, {}), fold_case=fold_case)  # no keys named


@FOLD
@pytest.mark.parametrize(("identifier", "start", "protected"), FOREIGN.values(), ids=FOREIGN.keys())
def test_sharing_opens_no_way_to_delete_a_snapshot_the_deployment_did_not_create(
    share_synth: Synthesized, identifier: str, start: dict[str, str], protected: bool, fold_case: bool
) -> None:
    statements = function_statements(share_synth)
    assert deletable_after_some_allowed_tagging(statements, identifier, start, fold_case=fold_case) != protected


def test_keys_may_be_described_in_this_region_only_and_nothing_is_copied_to_the_vault(
    share_synth: Synthesized,
) -> None:
    describe = "kms:DescribeKey"
    here = iam_model.Request(describe, "arn:aws:kms:us-east-1:123456789012:key/abcd")
    elsewhere = iam_model.Request(describe, "arn:aws:kms:eu-central-1:123456789012:key/abcd")
    copy_there = iam_model.Request(
        "rds:CopyDBClusterSnapshot",
        f"arn:aws:rds:eu-central-1:123456789012:cluster-snapshot:{naming.snapshot_id('orders', SLOT)}",
        request_tags={tags.DR_MARKER: "SnapshotScheduler"},
    )

    assert may(share_synth, here)
    assert not may(share_synth, elsewhere)
    assert not may(share_synth, copy_there)
    kms_actions = {a for s in function_statements(share_synth) for a in actions(s) if a.startswith("kms:")}
    assert kms_actions == {"kms:DescribeKey"}  # no key of dr-west is configured: nothing else

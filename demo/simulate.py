"""Play the scenario: the real Lambda handler, run hourly for a month against moto_server plus the fidelity
layer (tests/support), on a simulated clock. Returns everything the report needs; prints nothing."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

from snapshot_scheduler import cli, service, vault_service
from snapshot_scheduler.adapters import rds
from snapshot_scheduler.adapters.rds import RdsAdapter
from snapshot_scheduler.config import Settings
from snapshot_scheduler.dr import DrPlan
from snapshot_scheduler.handlers import backup
from snapshot_scheduler.naming import snapshot_id
from snapshot_scheduler.observability import logger
from snapshot_scheduler.planning import RunPlan
from snapshot_scheduler.tags import VAULT_MARKER
from snapshot_scheduler.vault import VaultPlan

from demo import scenario
from tests.support.clock import SimClock
from tests.support.fidelity import Accounts, RdsFidelity, TokenBucket
from tests.support.harness import rds_client, scheduled_lambda

CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_RDS")


@dataclass
class Results:
    endpoint: str
    start: datetime
    end: datetime  # the last run's scheduled time
    runs: list[dict[str, Any]] = field(default_factory=list)  # the handler's answers, in order
    stdout: list[str] = field(default_factory=list)  # every line the handler printed (logs and EMF)
    plan: RunPlan | None = None  # what a run at `end` would decide: the kept snapshots and their reasons
    dr_plan: DrPlan | None = None  # ... and about the copies in the DR regions
    status_table: str = ""  # `snapshot-scheduler status` at the end
    dr_look: tuple[datetime, str] | None = None  # ... its DR copies part at scenario.DR_LOOK_AT
    events: list[tuple[datetime, str]] = field(default_factory=list)  # what the scenario did, when
    foreign_before: set[str] = field(default_factory=set)  # snapshots not ours (hand-made, automated) at the start
    foreign_after: set[str] = field(default_factory=set)  # ... and at the end: the service must touch none
    foreign_copies: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # DR region -> others'
    # snapshots there (a teammate's copies) when they were made and at the end: the service must touch none
    calls: dict[str, int] = field(default_factory=dict)  # RDS calls the layer answered, by operation
    dr_calls: dict[str, dict[str, int]] = field(default_factory=dict)  # ... in each DR region
    throttled: int = 0
    seconds: float = 0.0
    # The vault account: its deployment's answers and output (hourly, from the first hour to a day after
    # the wipe), what it would decide at the end, its copies before the wipe and at the end, its RDS calls.
    vault_runs: list[dict[str, Any]] = field(default_factory=list)
    vault_stdout: list[str] = field(default_factory=list)
    vault_plan: VaultPlan | None = None
    vault_copies: tuple[set[str], set[str]] = (set(), set())
    vault_calls: dict[str, dict[str, int]] = field(default_factory=dict)
    wipe: tuple[datetime, dict[str, int]] | None = None  # when production was wiped; snapshots deleted per region


Progress = Callable[[int, int], None]


def simulate(endpoint: str, progress: Progress | None = None) -> Results:
    """The month of runs. `endpoint` is a running moto_server."""
    started = time.monotonic()
    hours = int(timedelta(days=scenario.DAYS) / scenario.RUN_EVERY)
    first = scenario.START
    results = Results(endpoint=endpoint, start=first, end=first + (hours - 1) * scenario.RUN_EVERY)
    with _environment(scenario.aws_environment(endpoint)):
        # Every change goes through the layers (or is followed by refresh()), so they need not re-read moto
        # over HTTP at each run: a month of runs takes seconds.
        accounts = Accounts(SimClock(first - timedelta(hours=1)))
        regions = accounts.regions(scenario.ACCOUNT)
        fidelity = regions.layer(
            scenario.REGION,
            quota=scenario.QUOTA,
            bucket=TokenBucket(),  # RDS's own: 300 burst, 12 per second
            latency=scenario.API_LATENCY,
            snapshot_creating_for=scenario.SNAPSHOT_CREATING_FOR,
            throttle_probability=scenario.THROTTLE_PROBABILITY,
            seed=7,
            reread_each_sweep=False,
        )
        dr_layers = {
            target["region"]: regions.layer(
                target["region"],
                quota=scenario.QUOTA,
                bucket=TokenBucket(),  # each region has its own
                latency=scenario.API_LATENCY,
                copying_for=scenario.DR_COPYING_FOR,
                reread_each_sweep=False,
            )
            for target in scenario.REGION_TARGETS.values()
        }
        vault = _Vault(accounts, endpoint, results)
        operator = rds_client(fidelity, endpoint_url=endpoint)  # what "someone at a terminal" uses
        operators = {
            region: rds_client(layer, region=region, endpoint_url=endpoint) for region, layer in dr_layers.items()
        }
        _build_fleet(fidelity)
        results.foreign_before = _foreign(fidelity)
        events = _Events(fidelity, operator, operators, results)
        production = _Deployment(fidelity, scenario.function_environment(), results.stdout, results.runs)
        look: datetime | None = scenario.DR_LOOK_AT
        for n in range(hours):
            at = first + n * scenario.RUN_EVERY
            if look is not None and look <= at:
                accounts.clock.advance_to(look)  # type: ignore[attr-defined]
                with production.context():
                    results.dr_look, look = (look, _cli_status(look).partition("\nDR copies (")[2]), None
            events.apply_until(at)
            production.run(at)
            if (at - first) % scenario.VAULT_RUN_EVERY == timedelta(0):
                vault.run(at + scenario.VAULT_RUNS_AT, after=production)
            if progress is not None:
                progress(n + 1, hours)
        with production.context():
            settings = Settings.from_env()
            adapters = {region: RdsAdapter(client) for region, client in operators.items()}
            discovery = service.discover(settings, RdsAdapter(operator), results.end, regions=adapters)
            results.plan, results.dr_plan = discovery.plan, discovery.dr
            results.status_table = _cli_status(results.end)
        results.foreign_after = _foreign(fidelity)
        for region, layer in dr_layers.items():
            made = events.teammate_copies.get(region, set())
            results.foreign_copies[region] = (made, made & {view.id for view in layer.snapshots()})
        results.calls = dict(fidelity.calls)
        results.dr_calls = {region: dict(layer.calls) for region, layer in dr_layers.items()}
        wipe_at = results.end + scenario.WIPE_AFTER_END
        accounts.clock.advance_to(wipe_at)  # type: ignore[attr-defined]
        vault.copies_before_wipe = vault.copies()
        results.wipe = (wipe_at, _wipe({scenario.REGION: operator, **operators}))
        results.events.append((wipe_at, "someone in production deletes every manual snapshot it can, in every region"))
        for n in range(1, scenario.VAULT_RUNS_AFTER_WIPE + 1):
            vault.run(results.end + n * scenario.VAULT_RUN_EVERY + scenario.VAULT_RUNS_AT, after=production)
        vault.finish()
        results.throttled = sum(sum(layer.throttled.values()) for layer in accounts)
    results.seconds = time.monotonic() - started
    return results


class _Deployment:
    """One deployment's function, warm between its runs as a Lambda container is. Another deployment's runs
    (another account) patch the same engine: `pause()` leaves this one's context before they run."""

    def __init__(
        self, fidelity: RdsFidelity, env: Mapping[str, str], lines: list[str], runs: list[dict[str, Any]]
    ) -> None:
        self.fidelity = fidelity
        self._env = env
        self._lines = lines
        self._runs = runs
        self._warm: Any = None  # the handler's runtime (settings, clients) built by this deployment's first run
        self._open: ExitStack | None = None
        self._handler: Any = None

    @contextmanager
    def context(self) -> Iterator[Any]:
        self.pause()
        with scheduled_lambda(self.fidelity, env=self._env) as handler, _capture_lines(self._lines):
            if self._warm is None:
                self._warm = backup.runtime()
            with patch.object(backup, "runtime", lambda: self._warm):
                yield handler

    def run(self, at: datetime) -> None:
        if self._open is None:
            stack = ExitStack()
            self._handler = stack.enter_context(self.context())
            self._open = stack
        self._runs.append(self._handler.run(at))

    def pause(self) -> None:
        if self._open is not None:
            self._open, stack = None, self._open
            stack.close()


class _Vault:
    """The vault account: its layer in its own region (its quota, rate limit, 5 copies in flight, copies
    `copying` for a while) and one in the source region, where RDS lists what is shared with it there."""

    def __init__(self, accounts: Accounts, endpoint: str, results: Results) -> None:
        self._results = results
        self.layer = accounts.layer(
            scenario.VAULT_ACCOUNT,
            scenario.VAULT_REGION,
            quota=scenario.QUOTA,
            bucket=TokenBucket(),
            latency=scenario.API_LATENCY,
            copying_for=scenario.VAULT_COPYING_FOR,
            reread_each_sweep=False,
        )
        self.lister = accounts.layer(
            scenario.VAULT_ACCOUNT, scenario.REGION, bucket=TokenBucket(), latency=scenario.API_LATENCY
        )
        self.client = rds_client(self.layer, region=scenario.VAULT_REGION, endpoint_url=endpoint)
        self.lister_client = rds_client(self.lister, region=scenario.REGION, endpoint_url=endpoint)
        self._deployment = _Deployment(
            self.layer, scenario.vault_environment(), results.vault_stdout, results.vault_runs
        )
        self.copies_before_wipe: set[str] = set()

    def run(self, at: datetime, *, after: _Deployment) -> None:
        after.pause()
        self._deployment.run(at)
        self._deployment.pause()

    def copies(self) -> set[str]:
        return {view.id for view in self.layer.snapshots() if view.tags.get(VAULT_MARKER) == scenario.VAULT_DEPLOYMENT}

    def finish(self) -> None:
        """What the vault holds at the end, why, and what it cost."""
        results = self._results
        with self._deployment.context():
            settings = Settings.from_env()
            at = datetime.fromisoformat(results.vault_runs[-1]["scheduled_time"])
            regions = {scenario.REGION: RdsAdapter(self.lister_client)}
            results.vault_plan, _, _ = vault_service.discover(settings, RdsAdapter(self.client), at, regions)
        results.vault_copies = (self.copies_before_wipe, self.copies())
        results.vault_calls = {
            region: dict(layer.calls)
            for region, layer in ((scenario.VAULT_REGION, self.layer), (scenario.REGION, self.lister))
        }


def _wipe(clients: Mapping[str, Any]) -> dict[str, int]:
    """Someone in the production account deletes every manual snapshot it can see, in every region: how many
    went, per region."""
    deleted: dict[str, int] = {}
    for region, client in clients.items():
        pages = client.get_paginator("describe_db_cluster_snapshots").paginate(SnapshotType="manual")
        for identifier in [s["DBClusterSnapshotIdentifier"] for page in pages for s in page["DBClusterSnapshots"]]:
            with suppress(client.exceptions.InvalidDBClusterSnapshotStateFault):
                client.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=identifier)
                deleted[region] = deleted.get(region, 0) + 1
    return deleted


def _build_fleet(fidelity: RdsFidelity) -> None:
    for cluster in scenario.FLEET:
        fidelity.create_cluster(cluster.id, engine=cluster.engine, tags=cluster.all_tags(), encrypted=cluster.encrypted)
    for n in range(scenario.HAND_MADE):
        fidelity.seed_snapshot(
            "scratch",
            f"scratch-before-upgrade-{n + 1:02d}",
            created=scenario.START - timedelta(days=40 - n),
            tags={"owner": "dba-team"},
        )


def _foreign(fidelity: RdsFidelity) -> set[str]:
    """Every snapshot in the account that is not this deployment's (manual by others, automated)."""
    marker = "snapshot-scheduler:deployment"
    return {view.id for view in fidelity.snapshots(snapshot_type=None) if view.tags.get(marker) != scenario.DEPLOYMENT}


class _Events:
    """Applies the scenario's busy spells and holds as simulated time reaches them."""

    def __init__(self, fidelity: RdsFidelity, operator: Any, operators: Mapping[str, Any], results: Results) -> None:
        self._fidelity = fidelity
        self._operator = operator
        self._operators = operators  # the operator's clients of the DR regions
        self._copies = sorted(scenario.TEAMMATE_COPIES, key=lambda c: c.at)
        self.teammate_copies: dict[str, set[str]] = {}  # region -> identifiers
        self._results = results
        self._busy = sorted(scenario.BUSY, key=lambda b: b.at)
        self._holds = sorted(scenario.HOLDS, key=lambda h: h.at)
        self._hand_made = sorted(scenario.HAND_MADE_LATER, key=lambda h: h.at)
        self._removals: list[tuple[datetime, scenario.HandMade, list[str]]] = []

    def apply_until(self, at: datetime) -> None:
        while self._busy and self._busy[0].at <= at:
            busy = self._busy.pop(0)
            if busy.attempts is not None:
                self._fidelity.make_busy(busy.cluster, attempts=busy.attempts)
                what = f"refuses the next {busy.attempts} snapshot attempts"
            else:
                assert busy.lasting is not None
                until = busy.at + busy.lasting
                self._fidelity.make_busy(busy.cluster, until=until, status=busy.status)
                what = f"is in {busy.status} until {until:%m-%d %H:%M} UTC"
            self._results.events.append((busy.at, f"{busy.cluster} {what} ({busy.story})"))
        while self._holds and self._holds[0].at <= at:
            hold = self._holds.pop(0)
            identifier = snapshot_id(hold.cluster, hold.slot)
            self._hold(identifier)
            self._results.events.append((hold.at, f"{identifier} tagged snapshot-hold=true ({hold.story})"))
        while self._hand_made and self._hand_made[0].at <= at:
            made = self._hand_made.pop(0)
            taken = self._take_by_hand(made)
            self._removals.append((made.removed_at, made, taken))
            self._results.events.append(
                (made.at, f"{len(taken)} hand-made snapshots of {made.cluster} taken ({made.story})")
            )
        while self._copies and self._copies[0].at <= at:
            copies = self._copies.pop(0)
            copied = self._copy_by_hand(copies)
            self.teammate_copies.setdefault(copies.region, set()).update(copied)
            self._results.events.append(
                (copies.at, f"{len(copied)} copies of scratch's snapshots started to {copies.region} ({copies.story})")
            )
        for removal in [r for r in self._removals if r[0] <= at]:
            self._removals.remove(removal)
            when, made, taken = removal
            for identifier in taken:
                self._operator.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=identifier)
            self._results.events.append((when, f"the {len(taken)} hand-made snapshots of {made.cluster} deleted"))

    def _take_by_hand(self, made: scenario.HandMade) -> list[str]:
        """Through the layer, so the account's quota and rate limit apply to them as to anyone."""
        self._fidelity.clock.advance_to(made.at)  # type: ignore[attr-defined]
        taken = []
        for n in range(made.count):
            identifier = f"{made.cluster}-by-hand-{made.at:%m%d}-{n + 1:02d}"
            try:
                self._operator.create_db_cluster_snapshot(
                    DBClusterIdentifier=made.cluster, DBClusterSnapshotIdentifier=identifier
                )
            except self._operator.exceptions.SnapshotQuotaExceededFault:
                break
            taken.append(identifier)
        return taken

    def _copy_by_hand(self, copies: scenario.TeammateCopies) -> list[str]:
        """Through the DR region's layer: they copy for as long as ours and count among its 5 in flight."""
        self._fidelity.clock.advance_to(copies.at)  # type: ignore[attr-defined]
        answer = self._operator.describe_db_cluster_snapshots(DBClusterIdentifier="scratch", SnapshotType="manual")
        sources = sorted(
            (s["DBClusterSnapshotIdentifier"], s["DBClusterSnapshotArn"]) for s in answer["DBClusterSnapshots"]
        )
        made = []
        for identifier, arn in sources[: copies.count]:
            target = f"{identifier}-copy"
            self._operators[copies.region].copy_db_cluster_snapshot(
                SourceDBClusterSnapshotIdentifier=arn,
                TargetDBClusterSnapshotIdentifier=target,
                SourceRegion=scenario.REGION,
            )
            made.append(target)
        return made

    def _hold(self, identifier: str) -> None:
        answer = self._operator.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=identifier)
        arn = answer["DBClusterSnapshots"][0]["DBClusterSnapshotArn"]
        self._operator.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "snapshot-hold", "Value": "true"}])
        self._fidelity.refresh()


def _cli_status(at: datetime) -> str:
    """`snapshot-scheduler status --at END`, as an operator would see it. Called inside scheduled_lambda(),
    whose build_client attaches the layer: the CLI gets it too (it imported the original by name)."""
    out, err = io.StringIO(), io.StringIO()
    with patch.object(cli, "build_client", rds.build_client), redirect_stdout(out), redirect_stderr(err):
        cli.main(["status", "--at", at.isoformat()])
    return out.getvalue().rstrip()


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in (*values, *CLEARED)}
    for name in CLEARED:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Lines(io.TextIOBase):
    """A text stream that keeps complete lines."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        self._lines.extend(line for line in complete if line)
        return len(text)

    def writable(self) -> bool:
        return True


@contextmanager
def _capture_lines(lines: list[str]) -> Iterator[None]:
    """What the handler prints to stdout (Powertools: JSON log lines and the EMF metric blobs) is the
    demo's data, not its output: keep it. The Logger's handler holds its own reference to stdout."""
    sink = _Lines(lines)
    handler = logger.registered_handler
    stream = handler.stream if isinstance(handler, logging.StreamHandler) else None
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(sink)
    try:
        with redirect_stdout(sink):
            yield
    finally:
        if isinstance(handler, logging.StreamHandler) and stream is not None:
            handler.setStream(stream)


def parse_lines(lines: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(EMF blobs, log records) from the handler's stdout."""
    blobs: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            (blobs if "_aws" in record else logs).append(record)
    return blobs, logs


def python_version() -> str:
    return sys.version.split()[0]

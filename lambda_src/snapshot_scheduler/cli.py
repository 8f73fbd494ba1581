"""snapshot-scheduler: the operator's CLI over the same service the Lambda runs.

    snapshot-scheduler [--region R] [--profile P] [--deployment D] [--policy-tag-key K] COMMAND
      run [--at TIME] [--dry-run] [--json]    one run, as the scheduled Lambda would do it
      plan [--at TIME] [--json]               what a run would create and delete, and why each snapshot stays
      status [--at TIME] [--json]             per cluster: policy, newest snapshot, in policy or not, next slot
      policy check "TAG VALUE" [--dr] [--json]  validate a policy (or DR) tag value and explain it in words
      doctor [--stack S] [--context F] [--json]  read-only preflight: account, fleet, stack (exit 0/1/2)

It uses the caller's AWS credentials; boto3 honours AWS_ENDPOINT_URL (a local emulator). Settings come from
the function's environment variables where set, else from the stack's defaults. With a vault's settings
(SNAPSHOT_VAULT set) run, plan and status are the vault's (cli_vault.py). Exit status: 0 all done,
1 something failed or was deferred (`status`: a cluster needs attention), 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError, ProfileNotFound

from snapshot_scheduler import cli_vault, config, doctor, service, vault_service
from snapshot_scheduler.adapters.deployment import DeploymentReader, client_factory
from snapshot_scheduler.adapters.rds import RdsAdapter, RdsError, build_client
from snapshot_scheduler.cli_text import (
    age_text,
    iso,
    ordinal,
    plural,
    print_json,
    quota_dict,
    quota_text,
    render_pairs,
    render_table,
    when,
)
from snapshot_scheduler.config import Settings
from snapshot_scheduler.copier import copy_out_of_policy
from snapshot_scheduler.demand import FleetDemand, fleet_demand, quota_summary
from snapshot_scheduler.dr import (
    DrPlan,
    TargetPlan,
    check_targets,
    copy_age,
    parse_dr_policy,
    selects_named,
    share_only_names,
)
from snapshot_scheduler.errors import ConfigError, ScheduleError
from snapshot_scheduler.freshness import schedule_warning
from snapshot_scheduler.handlers.backup import adapters, key_reader
from snapshot_scheduler.model import AVAILABLE, CREATING, Cluster, DrReport, Quota, Reason, RunReport, Snapshot
from snapshot_scheduler.observability import logger
from snapshot_scheduler.planning import ClusterPlan, ForeignMarked, Kept, out_of_policy, plan_run, recovery_point_age
from snapshot_scheduler.policy import Policy, PolicyError, describe_retention, describe_schedule, is_off
from snapshot_scheduler.policy_change import Pending
from snapshot_scheduler.schedule import next_slot

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

PROG = "snapshot-scheduler"
EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# The stack's defaults (infra/config.py DEFAULTS), used for any variable the environment does not set.
CLI_DEFAULTS: Mapping[str, str] = {
    config.POLICY_TAG_KEY: "snapshot-policy",
    config.DEPLOYMENT: "SnapshotScheduler",
    config.NAMED_POLICIES: "{}",
    config.DEFAULT_AT: "03:00",
    config.DEFAULT_TZ: "UTC",
    config.GRACE_MINUTES: "60",
    config.POLICY_CHANGE_GRACE_HOURS: "24",
    config.ENGINES: "aurora-mysql,aurora-postgresql,mysql,postgres",
    config.DRY_RUN: "false",
    config.API_RATE: "10",
    config.API_BURST: "200",
    config.BUSY_RETRY_SECONDS: "300",
    **config.DR_DEFAULTS,
    config.SERVICE_NAME: "snapshot-scheduler",
    config.METRICS_NAMESPACE: "SnapshotScheduler",
    config.LOG_LEVEL: "WARNING",
}
DEFAULT_TIMEOUT = 300.0  # seconds a CLI run may spend retrying busy clusters
NEXT_SLOTS = 3  # how many upcoming slots `policy check` lists


class UsageError(Exception):
    """Bad input on the command line: exit status 2."""


# ---------------------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad command line exits 2 with argparse's usage message
    with _logs_to_stderr(logging.INFO if args.verbose else logging.WARNING):
        try:
            command: Callable[[argparse.Namespace], int] = args.command
            return command(args)
        except (UsageError, ConfigError, PolicyError, ScheduleError) as error:
            _fail(str(error))
            return EXIT_USAGE
        except (NoRegionError, ProfileNotFound, NoCredentialsError) as error:
            hint = " (pass --region or set AWS_REGION)" if isinstance(error, NoRegionError) else ""
            _fail(f"{error}{hint}")
            return EXIT_USAGE
        except (RdsError, BotoCoreError) as error:
            _fail(f"RDS call failed: {error}")
            return EXIT_INCOMPLETE
        except KeyboardInterrupt:
            _fail("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`snapshot-scheduler plan | head`): stop quietly, as the docs of the
            # signal module advise, so Python's own flush at exit does not complain again.
            with suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_INCOMPLETE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Drive and inspect snapshot-scheduler with your own AWS credentials "
        "(AWS_ENDPOINT_URL is honoured).",
        epilog="Exit status: 0 all done, 1 something failed or was deferred, 2 bad usage or input.",
    )
    parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    parser.add_argument("--profile", help="AWS profile from the shared credentials/config files")
    parser.add_argument(
        "--deployment",
        help=f"deployment marker of the snapshots to manage (default: ${config.DEPLOYMENT} or "
        f"{CLI_DEFAULTS[config.DEPLOYMENT]}, the stack's default)",
    )
    parser.add_argument(
        "--policy-tag-key",
        help=f"cluster tag that holds the policy (default: ${config.POLICY_TAG_KEY} or "
        f"{CLI_DEFAULTS[config.POLICY_TAG_KEY]})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO (to stderr) instead of WARNING")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")
    timing = argparse.ArgumentParser(add_help=False)
    timing.add_argument(
        "--at",
        metavar="TIME",
        type=_parse_time,
        help="the scheduled time, ISO 8601 such as 2026-11-27T03:00Z (no zone: UTC; default: now)",
    )

    run = commands.add_parser("run", parents=[timing, output], help="one run, as the scheduled Lambda does it")
    run.add_argument("--dry-run", action="store_true", help="decide everything, change nothing")
    run.add_argument(
        "--timeout",
        type=_parse_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long the run may keep retrying busy clusters (default {DEFAULT_TIMEOUT:.0f})",
    )
    run.set_defaults(command=cmd_run)

    plan = commands.add_parser(
        "plan", parents=[timing, output], help="what a run would create and delete now, and why each snapshot stays"
    )
    plan.set_defaults(command=cmd_plan)

    status = commands.add_parser(
        "status", parents=[timing, output], help="per cluster: policy, newest snapshot, in policy or not, next slot"
    )
    status.set_defaults(command=cmd_status)

    policy = commands.add_parser("policy", help="work with policy tag values")
    policy_commands = policy.add_subparsers(title="policy commands", required=True, metavar="COMMAND")
    check = policy_commands.add_parser(
        "check", parents=[timing, output], help="validate a policy tag value and explain it in words"
    )
    check.add_argument("value", metavar="TAG_VALUE", help='e.g. "every=1d keep-daily=7 keep-weekly=4" or gfs')
    check.add_argument(
        "--dr",
        action="store_true",
        help='a DR tag value (drTagKey), e.g. "to=dr-west keep-daily=7 keep-weekly=4", or the name of a DR policy '
        f"(drPolicies, read from {config.DR_POLICIES})",
    )
    check.set_defaults(command=cmd_policy_check)
    _add_doctor(commands, output)
    return parser


def _add_doctor(commands: Any, output: argparse.ArgumentParser) -> None:
    doctor_parser = commands.add_parser(
        "doctor",
        parents=[output],
        help="read-only preflight before and after cdk deploy: the account, the fleet as tagged, the stack "
        "(exit 0 ok, 1 warnings, 2 failures)",
    )
    doctor_parser.add_argument(
        "--stack", help="the stack's name (default: stackName in the context file, else SnapshotScheduler)"
    )
    doctor_parser.add_argument(
        "--context",
        metavar="FILE",
        help="the CDK app's cdk.json, for what a deployment not made yet would do (default: ./cdk.json if any)",
    )
    doctor_parser.set_defaults(command=cmd_doctor)


# ---------------------------------------------------------------------------------------------------------
# Commands


def cmd_policy_check(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    at = args.at or datetime.now(UTC)
    if args.dr:
        return _dr_policy_check(settings, args, at)
    if is_off(args.value):
        if args.json:
            print_json({"valid": True, "value": args.value, "off": True})
        else:
            print(
                f"{args.value!r} is valid: the cluster is not managed (the same as no {settings.policy_tag_key} tag)."
            )
        return EXIT_OK
    try:
        policy = service.policy_context(settings).parse(args.value)
    except PolicyError:
        # The exact reason the service logs and reports for a cluster carrying this tag.
        _fail(policy_error_reason(settings, args.value))
        return EXIT_USAGE
    slots = upcoming_slots(policy, at, NEXT_SLOTS)
    warning = schedule_warning(policy, settings.run_interval)
    if args.json:
        print_json(
            {
                "valid": True,
                "value": args.value,
                "name": policy.name,
                "spec": policy.spec(),
                "description": policy.describe(),
                "schedule": describe_schedule(policy),
                "retention": describe_retention(policy.retention),
                "next_slots": [slot.isoformat() for slot in slots],
                "warning": warning,
            }
        )
        return EXIT_OK
    rows = [
        ("policy", f"{policy.name} = {policy.spec()}" if policy.name else policy.spec()),
        ("schedule", describe_schedule(policy)),
        ("retention", describe_retention(policy.retention)),
        ("next slots", ", ".join(when(slot, policy.tz) for slot in slots)),
        *([("warning", warning)] if warning else []),
    ]
    print(f"{args.value!r} is a valid policy.")
    print(render_pairs(rows))
    return EXIT_OK


def _dr_policy_check(settings: Settings, args: argparse.Namespace, at: datetime) -> int:
    """A DR tag value as a run reads it: a DR policy's name from SNAPSHOT_DR_POLICIES, targets checked against
    SNAPSHOT_DR_TARGETS when the environment sets them (the deployment's drPolicies and drTargets)."""
    try:
        accounts = share_only_names(settings.dr_targets)
        dr = parse_dr_policy(
            args.value, settings.dr_policies, at=settings.default_at, tz=settings.default_tz, accounts=accounts
        )
        if settings.dr_targets:
            check_targets(dr, settings.dr_targets)
    except PolicyError as error:
        hint = ""
        if selects_named(args.value) and not settings.dr_policies:
            hint = (
                f"; a DR policy's name is resolved from the deployment's drPolicies: set {config.DR_POLICIES} to "
                "its JSON (and SNAPSHOT_DR_TARGETS to drTargets) to check one here"
            )
        _fail(f"DR tag {settings.dr_tag_key}={args.value!r}: {error}{hint}")
        return EXIT_USAGE
    slots = upcoming_slots(dr.policy, at, NEXT_SLOTS)
    if args.json:
        print_json(
            {"valid": True, "value": args.value, "name": dr.name, "spec": dr.spec(), "targets": list(dr.targets),
             "description": dr.describe(), "next_slots": [slot.isoformat() for slot in slots]}
        )  # fmt: skip
        return EXIT_OK
    print(f"{args.value!r} is a valid DR policy.")
    rows = [
        ("dr policy", f"{dr.name} = {dr.spec()}" if dr.name else dr.spec()),
        ("targets", ", ".join(dr.targets)),
        ("copies", describe_schedule(dr.policy).replace("a snapshot", "a copy")),
        ("retention", describe_retention(dr.policy.retention)),
        ("next slots", ", ".join(when(slot, dr.policy.tz) for slot in slots)),
    ]
    print(render_pairs(rows))
    return EXIT_OK


def wall_clock() -> datetime:
    return datetime.now(UTC)


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    at = args.at or wall_clock()
    dry_run = bool(args.dry_run or settings.dry_run)
    deadline = time.monotonic() + args.timeout
    budget = service.Budget(remaining=lambda: deadline - time.monotonic(), margin=0.0)
    with connect(args, settings) as (rds, regions):
        # With the wall clock, as the Lambda runs: --at in a passed slot is never back-filled, nor a
        # future one taken early.
        if settings.vault is not None:  # a vault's run, as its handler does it
            report = vault_service.run(
                settings, rds, at, now=wall_clock(), dry_run=dry_run, budget=budget, regions=regions
            )
        else:
            keys = key_reader(settings, rds.region, args.profile)  # default-key snapshots skipped, as the function does
            report = service.run(
                settings, rds, at, now=wall_clock(), dry_run=dry_run, budget=budget, regions=regions, kms=keys
            )
    if args.json:
        print_json(report.to_dict() | {"complete": report.complete})
    else:
        print(render_report(report))
    return EXIT_OK if report.complete else EXIT_INCOMPLETE


def cmd_plan(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    at = args.at or datetime.now(UTC)
    if settings.vault is not None:
        return cli_vault.show_plan(vault_view(args, settings, at), settings, at, as_json=args.json)
    with connect(args, settings) as (rds, regions):
        discovery = service.discover(
            settings, rds, at, regions=regions, kms=key_reader(settings, rds.region, args.profile)
        )
    plans = discovery.plan.clusters
    demand = fleet_demand(plans, discovery.snapshots, settings.deployment)
    if args.json:
        print_json(
            {
                "scheduled_time": at.isoformat(),
                "clusters": [plan_to_dict(p) | {"warning": _warning(p, settings.run_interval)} for p in plans],
                "foreign_marked": [foreign_to_dict(f) for f in discovery.plan.foreign_marked],
                "steady_state": demand_to_dict(demand, discovery.quota),
                "dr": None if discovery.dr is None else dr_plan_to_dict(discovery.dr),
            }
        )
    else:
        print(render_plan(plans, at, settings.run_interval))
        if discovery.plan.foreign_marked:
            print(render_foreign(discovery.plan.foreign_marked))
        if discovery.dr is not None:
            print(render_dr_plan(discovery.dr))
        print(render_demand(demand, discovery.quota))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    at = args.at or datetime.now(UTC)
    if settings.vault is not None:
        return cli_vault.show_status(vault_view(args, settings, at), settings, at, as_json=args.json)
    with connect(args, settings) as (rds, regions):
        discovery = service.discover(
            settings, rds, at, regions=regions, kms=key_reader(settings, rds.region, args.profile)
        )
    rows = [cluster_status(p, at, settings.grace, settings.run_interval) for p in discovery.plan.clusters]
    dr = None if discovery.dr is None else dr_status(discovery.dr, at, settings.grace, settings.dr_stuck)
    if args.json:
        print_json(
            {
                "at": at.isoformat(),
                "quota": quota_dict(discovery.quota),
                "clusters": [row.to_dict() for row in rows],
                "dr": None if dr is None else dr.to_dict(),
            }
        )
    else:
        print(render_status(rows, discovery.quota, at))
        if dr is not None:
            print(render_dr_status(dr))
    attention = any(row.attention for row in rows) or (dr is not None and dr.attention)
    return EXIT_INCOMPLETE if attention else EXIT_OK


def vault_view(args: argparse.Namespace, settings: Settings, at: datetime) -> cli_vault.VaultView:
    """What a vault run at `at` would read and decide, through the same adapters as its handler."""
    with connect(args, settings) as (rds, regions):
        return cli_vault.VaultView(*vault_service.discover(settings, rds, at, regions))


def cmd_doctor(args: argparse.Namespace) -> int:
    local = doctor.local_context(*_read_context(args.context), args.stack)
    settings = load_settings(args, {**local.environment, **os.environ})
    reader = DeploymentReader(client_factory(args.region, args.profile))
    with connect(args, settings) as (rds, _):
        checks = doctor.diagnose(settings, rds, reader, local, wall_clock())
    status = doctor.exit_status(checks)
    if args.json:
        print_json({"status": status, "checks": [check.to_dict() for check in checks]})
    else:
        print(doctor.render(checks))
    return status


def _read_context(path: str | None) -> tuple[dict[str, Any], str | None]:
    """The `context` of a cdk.json: the one named, or ./cdk.json when there is one."""
    name = path or "cdk.json"
    try:
        with open(name, encoding="utf-8") as file:
            context = json.load(file).get("context", {})
    except FileNotFoundError as error:
        if path is None:
            return {}, None
        raise UsageError(f"--context {path}: no such file") from error
    except (OSError, ValueError, AttributeError) as error:
        raise UsageError(f"{name}: not a cdk.json with a context object ({error})") from error
    if not isinstance(context, dict):
        raise UsageError(f"{name}: its context is not an object")
    return context, name


# ---------------------------------------------------------------------------------------------------------
# Settings, connection, logs


def load_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """The function's variables where the environment sets them, else the stack's defaults; then the flags.
    Validated by the same Settings.from_env as the Lambda (a bad value is a ConfigError: exit 2)."""
    env = os.environ if environ is None else environ
    merged = dict(CLI_DEFAULTS)
    merged.update({name: env[name] for name in (*config.ENV_VARS, config.VAULT) if env.get(name, "").strip()})
    flags = {
        config.DEPLOYMENT: ("--deployment", args.deployment),
        config.POLICY_TAG_KEY: ("--policy-tag-key", args.policy_tag_key),
    }
    for name, (_, value) in flags.items():
        if value is not None:
            merged[name] = value
    try:
        return Settings.from_env(merged)
    except ConfigError as error:
        message = str(error)
        for name, (flag, value) in flags.items():
            if value is not None:
                message = message.replace(f"environment variable {name}=", f"{flag} ")
        raise ConfigError(message) from error


@contextmanager
def connect(args: argparse.Namespace, settings: Settings) -> Iterator[tuple[RdsAdapter, dict[str, RdsAdapter]]]:
    """Paced RDS adapters over the caller's credentials, as the function builds them: the region's, and one
    per DR target region (SNAPSHOT_DR_TARGETS); progress on a terminal counts the calls of all of them."""
    progress = Progress(sys.stderr)

    def build(region: str | None) -> RDSClient:
        client = build_client(region or args.region, args.profile)
        client.meta.events.register("after-call.rds", progress.after_call)
        return client

    try:
        yield adapters(settings, build)
    finally:
        progress.close()


class Progress:
    """One self-rewriting line on stderr while a command talks to RDS, only on a terminal and only once
    the command has taken longer than a moment."""

    DELAY = 1.0  # seconds before the line first appears
    INTERVAL = 0.1

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._enabled = stream.isatty()
        self._started = clock()
        self._shown = 0.0
        self._calls: Counter[str] = Counter()
        self._lock = threading.Lock()  # the service calls RDS from several threads

    def after_call(self, model: Any = None, **_: Any) -> None:
        with self._lock:
            self._calls[getattr(model, "name", "?")] += 1
            now = self._clock()
            if not self._enabled or now - self._started < self.DELAY or now - self._shown < self.INTERVAL:
                return
            self._shown = now
            self._stream.write(f"\r{self.line(now)}\x1b[K")
            self._stream.flush()

    def line(self, now: float) -> str:
        calls = self._calls
        pages = calls["DescribeDBClusters"] + calls["DescribeDBClusterSnapshots"]
        return (
            f"{PROG}: {now - self._started:5.1f}s, {sum(calls.values())} RDS calls "
            f"({pages} describe pages, {calls['CreateDBClusterSnapshot']} creates, "
            f"{calls['DeleteDBClusterSnapshot']} deletes)"
        )

    def close(self) -> None:
        if self._enabled and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


@contextmanager
def _logs_to_stderr(level: int) -> Iterator[None]:
    """The service's Powertools Logger writes JSON to stdout for CloudWatch; on a terminal stdout holds the
    tables, so its lines go to stderr, at WARNING unless --verbose. Restored afterwards (tests, embedding)."""
    handler = logger.registered_handler
    stream = handler.stream if isinstance(handler, logging.StreamHandler) else None
    previous = logger.log_level
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(sys.stderr)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
        if isinstance(handler, logging.StreamHandler) and stream is not None:
            handler.setStream(stream)


# ---------------------------------------------------------------------------------------------------------
# Decisions


def policy_error_reason(settings: Settings, value: str) -> str:
    """What the service reports (and logs) for a cluster whose policy tag is `value`, built by the same
    planning code, so `policy check` and the run can never word it differently."""
    probe = Cluster(
        id="policy-check", arn="", engine=min(settings.engines), status=AVAILABLE, tags={settings.policy_tag_key: value}
    )
    plan = plan_run(service.policy_context(settings), [probe], [], datetime.now(UTC))
    for cluster in plan.clusters:
        if cluster.skip is not None:
            return cluster.skip[1]
    return f"policy tag {settings.policy_tag_key}={value!r} is off: the cluster is not managed"


def upcoming_slots(policy: Policy, at: datetime, count: int) -> list[datetime]:
    slots: list[datetime] = []
    for _ in range(count):
        at = next_slot(policy, at)
        slots.append(at)
    return slots


@dataclass(frozen=True)
class ClusterStatus:
    cluster: str
    policy_text: str
    description: str
    state: str
    attention: bool
    newest: str | None
    newest_time: datetime | None
    age: timedelta | None
    snapshots: int
    creating: int
    held: int
    to_delete: int
    pending: int  # deletions a change of policy caused, waiting for the grace
    pending_until: datetime | None
    next_slot: datetime | None
    problem: str | None
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "policy": self.policy_text,
            "description": self.description,
            "state": self.state,
            "attention": self.attention,
            "newest_snapshot": self.newest,
            "newest_snapshot_time": iso(self.newest_time),
            "age_seconds": None if self.age is None else int(self.age.total_seconds()),
            "snapshots": self.snapshots,
            "creating": self.creating,
            "held": self.held,
            "to_delete": self.to_delete,
            "pending": self.pending,
            "pending_deletable_after": iso(self.pending_until),
            "next_slot": iso(self.next_slot),
            "problem": self.problem,
            "warning": self.warning,
        }


def cluster_status(
    plan: ClusterPlan, at: datetime, grace: timedelta, run_interval: timedelta | None = None
) -> ClusterStatus:
    snapshots = [k.snapshot for k in plan.kept] + list(plan.delete)
    available = [s for s in snapshots if s.status == AVAILABLE and s.time is not None]
    newest = max(available, key=lambda s: s.created or s.time or at, default=None)
    problem = None
    if plan.cluster is None:
        state, attention = "orphaned", False
        problem = "cluster is gone or no longer tagged; its snapshots are pruned by their recorded policy"
    elif plan.skip is not None:
        code, problem = plan.skip
        state, attention = code.value, code in (Reason.POLICY_ERROR, Reason.UNAVAILABLE)
        if out_of_policy(plan, at, grace):  # backups stopped, judged by the policy its snapshots record
            state, attention = f"{code.value}, OUT OF POLICY", True
    elif out_of_policy(plan, at, grace):
        state, attention = "OUT OF POLICY", True
        problem = "the newest available snapshot is older than the policy's interval plus the grace"
    else:
        state, attention = "ok", False
    if plan.defer is not None and problem is None:
        problem = plan.defer[1]
    if plan.pending:  # someone should see this before the grace ends
        attention = True
        problem = problem or pending_problem(plan.pending)
    age = recovery_point_age(plan, at) if plan.cluster is not None else None
    if plan.cluster is None and newest is not None:
        age = at - (newest.created or newest.time or at)
    return ClusterStatus(
        cluster=plan.cluster_id,
        policy_text=_policy_text(plan),
        description=plan.policy.describe() if plan.policy is not None else "",
        state=state,
        attention=attention,
        newest=newest.id if newest else None,
        newest_time=(newest.created or newest.time) if newest else None,
        age=age if newest is not None else None,
        snapshots=len(snapshots),
        creating=sum(1 for s in snapshots if s.status == CREATING),
        held=sum(1 for s in snapshots if s.held),
        to_delete=len(plan.delete),
        pending=len(plan.pending),
        pending_until=plan.pending[0].deletable_after if plan.pending else None,
        next_slot=plan.next_slot,
        problem=problem,
        warning=_warning(plan, run_interval),
    )


def pending_problem(pending: Sequence[Pending], *, copies: bool = False) -> str:
    """What a change of policy (of DR policy, for `copies`) will delete when its grace ends, and how to stop it."""
    first, count = pending[0], len(pending)
    what = (f"{count} {'copy' if count == 1 else 'copies'}", "DR tag") if copies else (plural(count, "snapshot"), "tag")
    return (
        f"{'DR ' if copies else ''}policy changed: {what[0]} that {first.kept_by!r} keeps will be deleted "
        f"from {when(first.deletable_after)} at the earliest; restore the {what[1]} or hold them to keep them"
    )


def _warning(plan: ClusterPlan, run_interval: timedelta | None) -> str | None:
    """A policy the deployment's schedule cannot keep (known when SNAPSHOT_SCHEDULE_MINUTES is set)."""
    return schedule_warning(plan.policy, run_interval) if plan.policy is not None and plan.cluster else None


def _policy_text(plan: ClusterPlan) -> str:
    if plan.policy is not None:
        return plan.policy.name or plan.policy.spec()
    if plan.cluster is not None and plan.skip is not None and plan.skip[0] is Reason.POLICY_ERROR:
        return "(invalid tag)"
    return "-"


def plan_to_dict(plan: ClusterPlan) -> dict[str, Any]:
    return {
        "cluster": plan.cluster_id,
        "orphaned": plan.cluster is None,
        "policy": plan.policy.spec() if plan.policy else None,
        "policy_name": plan.policy.name if plan.policy else None,
        "description": plan.policy.describe() if plan.policy else None,
        "slot": iso(plan.slot),
        "next_slot": iso(plan.next_slot),
        "create": plan.create if plan.skip is None and plan.defer is None else None,
        "skip": _reason_dict(plan.skip),
        "defer": _reason_dict(plan.defer),
        "fail": None if plan.fail is None else {"error": plan.fail[0], "message": plan.fail[1]},
        "delete": [{"snapshot": s.id, "time": iso(s.time)} for s in plan.delete],
        "pending": _pending_dicts(plan.pending),
        "keep": _kept_dicts(plan.kept),
    }


def _pending_dicts(pending: Sequence[Pending], policy: str | None = None) -> list[dict[str, Any]]:
    """`policy`: the current policy as the user writes it, when it is more than the retention (a DR tag's)."""
    return [p.entry() | {"time": iso(p.snapshot.time), "policy": policy or p.policy} for p in pending]


def _kept_dicts(kept: Sequence[Kept]) -> list[dict[str, Any]]:
    return [
        {"snapshot": k.snapshot.id, "time": iso(k.snapshot.time), "status": k.snapshot.status, "reasons": k.reasons}
        for k in _kept_newest_first(kept)
    ]


def _reason_dict(decision: tuple[Reason, str] | None) -> dict[str, str] | None:
    return None if decision is None else {"code": decision[0].value, "reason": decision[1]}


def foreign_to_dict(foreign: ForeignMarked) -> dict[str, str]:
    return {"snapshot": foreign.snapshot.id, "cluster": foreign.snapshot.cluster_id, "reason": foreign.reason}


def demand_to_dict(demand: FleetDemand, quota: Quota | None) -> dict[str, Any]:
    return {
        "clusters": [
            {"cluster": c.cluster_id, "policy": c.policy, "held": c.held, "total": c.total, "note": c.note}
            for c in demand.clusters
        ],
        "not_ours": demand.not_ours,
        "total": demand.total,
        "quota": quota_dict(quota),
        "summary": quota_summary(demand, quota.max if quota else None),
    }


def _kept_newest_first(kept: Sequence[Kept]) -> list[Kept]:
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(kept, key=lambda k: k.snapshot.time or never, reverse=True)


# ---------------------------------------------------------------------------------------------------------
# Rendering for humans


def render_report(report: RunReport) -> str:
    if report.vault is not None:
        return cli_vault.render_report(report)
    title = f"Run for {when(report.scheduled_time)}"
    if report.dry_run:
        title += " (dry run: nothing was changed)"
    rows: list[tuple[str, str, str]] = []
    rows += [("created", e["cluster"], e["snapshot"]) for e in report.created]
    rows += [("deleted", e["cluster"], e["snapshot"]) for e in report.deleted]
    rows += [("deferred", e["cluster"], f"{e['code']}: {e['reason']}") for e in report.deferred]
    rows += [("skipped", e["cluster"], f"{e['code']}: {e['reason']}") for e in report.skipped]
    rows += [("failed", e["cluster"], f"{e['error']}: {e['message']}") for e in report.failed]
    rows += [("foreign-marked", e["cluster"], f"{e['snapshot']}: {e['reason']}") for e in report.foreign_marked]
    rows += [("unlisted", e["cluster"], e["reason"]) for e in report.unlisted]
    rows += [
        ("pending", str(e["cluster"]), f"{e['snapshot']}: kept by {e['kept_by']!r} until {e['deletable_after']}")
        for e in report.pending
    ]
    rows += [("missed", e["cluster"], f"slot {e['slot']} not taken: {e['reason']}") for e in report.missed]
    rows += [("warning", e["cluster"], f"{e['code']}: {e['message']}") for e in report.warnings]
    rows += _dr_report_rows(report.dr)
    body = render_table(("ACTION", "CLUSTER", "SNAPSHOT / REASON"), rows) if rows else "Nothing to do."
    verb = "would be " if report.dry_run else ""
    summary = (
        f"{len(report.created)} {verb}created, {len(report.deleted)} {verb}deleted, "
        f"{len(report.deferred)} deferred, {len(report.skipped)} skipped, {len(report.failed)} failed; "
        f"{plural(report.clusters_managed, 'cluster')} managed, {len(report.out_of_policy)} out of policy"
    )
    if report.quota is not None:
        summary += f"; quota {quota_text(report.quota)}"
    if report.busy_retries or report.throttles:
        summary += f"; {report.busy_retries} busy retries, {report.throttles} throttles"
    lines = [title, "", body, "", summary]
    if report.out_of_policy:
        lines.append("Out of policy: " + ", ".join(report.out_of_policy))
    if report.pending:
        lines.append(
            f"{plural(len(report.pending), 'deletion')} caused by a policy change wait for the grace "
            "(restore the policy tag, or hold the snapshots, to keep them)."
        )
    if report.dr is not None and report.dr.pending:
        lines.append(
            f"{plural(len(report.dr.pending), 'copy deletion')} caused by a DR policy change wait for the grace "
            "(restore the DR tag, or hold the copies, to keep them)."
        )
    if not report.complete:
        lines.append("Not complete: what was deferred or failed is retried by the next run (exit status 1).")
    return "\n".join(lines)


def _dr_report_rows(dr: DrReport | None) -> list[tuple[str, str, str]]:
    if dr is None:
        return []
    rows = [("copy started", e["cluster"], f"{e['snapshot']} to {_where(e)} from {e['source']}") for e in dr.started]
    rows += [("copy deleted", e["cluster"], f"{e['snapshot']} in {_where(e)}") for e in dr.deleted]
    rows += [("copy deferred", e["cluster"], f"{_where(e)}: {e['code']}: {e['reason']}") for e in dr.deferred]
    rows += [("copy skipped", e["cluster"], f"{_where(e)}: {e['code']}: {e['reason']}") for e in dr.skipped]
    rows += [("copy failed", e["cluster"], f"{_where(e)}: {e['error']}: {e['message']}") for e in dr.failed]
    rows += [("copy stuck", e["cluster"], f"{e['snapshot']} in {_where(e)}: {e['reason']}") for e in dr.stuck]
    rows += [("dr policy error", e["cluster"], e["reason"]) for e in dr.errors]
    rows += [
        (
            "copy pending",
            str(e["cluster"]),
            f"{e['snapshot']} in {e['region']}: kept by {e['kept_by']!r} until {e['deletable_after']}",
        )
        for e in dr.pending
    ]
    return rows


def _where(entry: Mapping[str, str]) -> str:
    return _target_text(entry.get("target"), entry["region"])


def render_plan(plans: Sequence[ClusterPlan], at: datetime, run_interval: timedelta | None = None) -> str:
    lines = [f"Plan for {when(at)}: what a run would do now (nothing is changed)"]
    if not plans:
        lines.append("No cluster carries a policy tag, and no snapshots of ours are left to prune.")
    for plan in plans:
        lines.append("")
        orphan = "  (cluster gone or untagged: pruned by its recorded policy)" if plan.fail is None else ""
        heading = plan.cluster_id + (orphan if not plan.cluster else "")
        lines.append(heading)
        pairs: list[tuple[str, str]] = []
        if plan.policy is not None:
            name = f"{plan.policy.name}: " if plan.policy.name else ""
            pairs.append(("policy", name + plan.policy.describe()))
        if plan.slot is not None:
            pairs.append(("slot", f"{when(plan.slot)} (next {when(plan.next_slot)})"))
        warning = _warning(plan, run_interval)
        if warning is not None:
            pairs.append(("warning", warning))
        if plan.fail is not None:
            pairs.append(("fail", f"{plan.fail[0]}: {plan.fail[1]}"))
        elif plan.skip is not None:
            pairs.append(("skip", f"{plan.skip[0].value}: {plan.skip[1]}"))
        elif plan.defer is not None:
            pairs.append(("defer", f"{plan.defer[0].value}: {plan.defer[1]}"))
        elif plan.create is not None:
            pairs.append(("create", plan.create))
        elif plan.cluster is not None:
            pairs.append(("create", "nothing: this slot's snapshot exists"))
        for snapshot in sorted(plan.delete, key=lambda s: s.time or at, reverse=True):
            pairs.append(("delete", f"{snapshot.id}  ({when(snapshot.time)})"))
        if plan.pending:
            pairs.append(("pending", pending_problem(plan.pending)))
        for kept in _kept_newest_first(plan.kept):
            pairs.append(("keep", f"{kept.snapshot.id}  ({when(kept.snapshot.time)}): {', '.join(kept.reasons)}"))
        lines.append(render_pairs(pairs))
    return "\n".join(lines)


def render_foreign(foreign: Sequence[ForeignMarked]) -> str:
    rows = [(f.snapshot.id, f.snapshot.cluster_id, f.reason) for f in foreign]
    title = "Foreign-marked: they carry this deployment's marker but are not ours, and are left alone"
    return "\n".join(["", title, render_table(("SNAPSHOT", "CLUSTER", "WHY NOT OURS"), rows)])


def render_demand(demand: FleetDemand, quota: Quota | None) -> str:
    """Quota planning: what each cluster needs at steady state, and the fleet against the quota."""
    rows = [
        (c.cluster_id, "no end" if c.total is None else str(c.total), str(c.held) if c.held else "-", c.note or "")
        for c in demand.clusters
    ]
    lines = ["", "Manual snapshots at steady state (its policy's most, plus held ones)"]
    if rows:
        lines.append(render_table(("CLUSTER", "SNAPSHOTS", "HELD", "NOTE"), rows))
    lines.append(quota_summary(demand, quota.max if quota else None))
    return "\n".join(lines)


def render_status(rows: Sequence[ClusterStatus], quota: Quota | None, at: datetime) -> str:
    lines = [f"Status at {when(at)}"]
    if quota is not None:
        lines.append(f"Manual cluster snapshot quota: {quota_text(quota)}")
    lines.append("")
    if not rows:
        lines.append("No cluster carries a policy tag.")
        return "\n".join(lines)
    table = [
        (
            row.cluster,
            row.state,
            row.newest or "-",
            age_text(row.age) if row.age is not None else "-",
            _counts(row),
            when(row.next_slot) if row.next_slot else "-",
            row.policy_text,
        )
        for row in rows
    ]
    lines.append(
        render_table(("CLUSTER", "STATE", "NEWEST SNAPSHOT", "AGE", "SNAPSHOTS", "NEXT SLOT", "POLICY"), table)
    )
    described = [(row.cluster, row.description) for row in rows if row.description]
    if described:
        lines += ["", "Policies in words:", render_pairs(described)]
    problems = [(row.cluster, row.problem) for row in rows if row.problem]
    if problems:
        lines += ["", "Needs a look:", render_pairs([(c, p) for c, p in problems if p is not None])]
    warnings = [(row.cluster, row.warning) for row in rows if row.warning is not None]
    if warnings:
        lines += ["", "Policy warnings:", render_pairs(warnings)]
    return "\n".join(lines)


def _counts(row: ClusterStatus) -> str:
    extra = [
        f"{n} {what}"
        for n, what in (
            (row.creating, "creating"),
            (row.held, "held"),
            (row.to_delete, "to delete"),
            (row.pending, "pending"),
        )
        if n
    ]
    return str(row.snapshots) + (f" ({', '.join(extra)})" if extra else "")


def _fail(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------
# DR copies: what `status` and `plan` show of them, from the DrPlan the service built in discovery


@dataclass(frozen=True)
class CopyStatus:
    """One cluster's copies in one DR target (or in a region it left: orphaned)."""

    cluster: str
    target: str | None
    region: str
    state: str
    attention: bool
    newest: str | None
    newest_slot: datetime | None
    age: timedelta | None
    copies: int
    in_flight: tuple[Snapshot, ...]
    stuck: tuple[Snapshot, ...]
    failed: tuple[Snapshot, ...]
    problems: tuple[str, ...]
    pending: int = 0  # deletions a change of DR policy caused, waiting for the grace
    pending_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "target": self.target,
            "region": self.region,
            "state": self.state,
            "attention": self.attention,
            "newest_copy": self.newest,
            "newest_copy_slot": iso(self.newest_slot),
            "age_seconds": None if self.age is None else int(self.age.total_seconds()),
            "copies": self.copies,
            "in_flight": [_copying_dict(s) for s in self.in_flight],
            "stuck": [_copying_dict(s) for s in self.stuck],
            "failed": [s.id for s in self.failed],
            "pending": self.pending,
            "pending_deletable_after": iso(self.pending_until),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class DrStatus:
    targets: tuple[CopyStatus, ...]
    errors: tuple[tuple[str, str], ...]  # (cluster, why its DR tag cannot be used)
    unreadable: Mapping[str, str]  # region -> why its sweep failed

    @property
    def attention(self) -> bool:
        return bool(self.errors or self.unreadable) or any(t.attention for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": [t.to_dict() for t in self.targets],
            "errors": [{"cluster": c, "reason": r} for c, r in self.errors],
            "unreadable": dict(self.unreadable),
        }


def dr_status(plan: DrPlan, at: datetime, grace: timedelta, allowance: timedelta) -> DrStatus:
    rows = tuple(copy_status(t, at, grace, allowance) for t in plan.targets)
    errors = tuple((e.cluster_id, e.message) for e in plan.errors)
    return DrStatus(rows, errors, dict(plan.unreadable))


def copy_status(plan: TargetPlan, at: datetime, grace: timedelta, allowance: timedelta) -> CopyStatus:
    """`allowance`: drStuckHours, the time a copy may take (as the DrRecoveryPointBreached alarm counts it)."""
    copies = _copies(plan)
    newest = max(
        (s for s in copies if s.status == AVAILABLE and s.time is not None), key=lambda s: s.time or at, default=None
    )
    problems: list[str] = []
    out = (
        plan.policy is not None
        and plan.cluster is not None
        # Not excused by a copy the plan would start: only trying tells whether the key is usable.
        and copy_out_of_policy(plan, at, grace, allowance)
    )
    if plan.cluster is None:
        state, attention = "orphaned", plan.policy is None
        problems.append(_orphan_problem(plan))
    elif plan.skip is not None:
        code, reason = plan.skip
        state, attention = code.value + (", OUT OF POLICY" if out else ""), True
        problems.append(reason)
    elif out:
        state, attention = "OUT OF POLICY", True
        problems.append(
            f"no copy in {plan.region} and none copying" + (" (a run would start one now)" if plan.starts else "")
            if newest is None
            else "the newest available copy is older than the DR interval plus the grace plus drStuckHours for "
            "the copy itself"
        )
    else:
        state, attention = ("ok" if newest is not None else "first copy pending"), False
    if plan.fail is not None:
        attention = True
        problems.append(f"{plan.fail[0]}: {plan.fail[1]}")
    if plan.defer is not None:
        problems.append(f"{plan.defer[0].value}: {plan.defer[1]}")
    problems += [
        f"copy {s.id} still copying since {when(s.created)}; RDS may be slow, never cancelled" for s in plan.stuck
    ]
    problems += [f"copy {s.id} ended failed: the next run deletes it and copies the slot again" for s in plan.failed]
    if plan.pending:  # someone should see this before the grace ends
        problems.append(pending_problem(plan.pending, copies=True))
    return CopyStatus(
        cluster=plan.cluster_id,
        target=plan.target.name if plan.target is not None else None,
        region=plan.region,
        state=state,
        attention=attention or bool(plan.stuck or plan.failed or plan.pending),
        newest=newest.id if newest else None,
        newest_slot=newest.time if newest else None,
        age=copy_age(plan, at),
        copies=len(copies),
        in_flight=plan.in_flight,
        stuck=plan.stuck,
        failed=plan.failed,
        problems=tuple(problems),
        pending=len(plan.pending),
        pending_until=plan.pending[0].deletable_after if plan.pending else None,
    )


def _copies(plan: TargetPlan) -> list[Snapshot]:
    return [k.snapshot for k in plan.kept] + list(plan.delete)


def _orphan_problem(plan: TargetPlan) -> str:
    if plan.skip is not None:
        return plan.skip[1]
    if plan.policy is None:
        return "its DR tag is invalid: none of its copies is deleted until it is fixed"
    return (
        "the cluster left DR (deleted, DR tag removed, or target dropped from to=): its copies are pruned by "
        "the DR policy recorded on the newest, never below one"
    )


def _copying_dict(snapshot: Snapshot) -> dict[str, Any]:
    return {"snapshot": snapshot.id, "progress": snapshot.progress, "since": iso(snapshot.created)}


def _copying_text(snapshot: Snapshot) -> str:
    progress = "" if snapshot.progress is None else f" {snapshot.progress}%"
    return f"{snapshot.id}{progress}"


def _target_text(target: str | None, region: str) -> str:
    return f"{target} ({region})" if target else f"{region} (target no longer named)"


def render_dr_status(status: DrStatus) -> str:
    lines = ["", "DR copies (newest available copy per cluster and target, by its slot)"]
    if not status.targets:
        lines.append("No cluster carries a DR tag, and no copies of ours are left to prune.")
    else:
        table = [
            (
                row.cluster,
                _target_text(row.target, row.region),
                row.state,
                row.newest or "-",
                age_text(row.age) if row.age is not None else "-",
                str(row.copies) + (f" ({row.pending} pending)" if row.pending else ""),
                ", ".join(_copying_text(s) for s in row.in_flight) or "-",
            )
            for row in status.targets
        ]
        lines.append(render_table(("CLUSTER", "TARGET", "STATE", "NEWEST COPY", "AGE", "COPIES", "COPYING"), table))
    problems = [(f"{row.cluster} -> {row.target or row.region}", p) for row in status.targets for p in row.problems]
    problems += [(cluster, f"DR policy error: {reason}") for cluster, reason in status.errors]
    problems += [
        (region, f"could not be read, no copy started or deleted: {why}") for region, why in status.unreadable.items()
    ]
    if problems:
        lines += ["", "DR needs a look:", render_pairs(problems)]
    return "\n".join(lines)


def dr_plan_to_dict(plan: DrPlan) -> dict[str, Any]:
    order = _start_order(plan)
    return {
        "targets": [_target_plan_dict(t, order) for t in plan.targets],
        "errors": [{"cluster": e.cluster_id, "reason": e.message} for e in plan.errors],
        "unreadable": dict(plan.unreadable),
    }


def _target_plan_dict(plan: TargetPlan, order: Mapping[int, tuple[int, int]]) -> dict[str, Any]:
    job = plan.copy
    return {
        "cluster": plan.cluster_id,
        "target": plan.target.name if plan.target is not None else None,
        "region": plan.region,
        "orphaned": plan.cluster is None,
        "policy": plan.policy.spec() if plan.policy else None,
        "name": plan.policy.name if plan.policy else None,
        "description": plan.policy.describe() if plan.policy else None,
        "slot": iso(plan.slot),
        "copy": None
        if job is None or plan.skip or plan.fail
        else {
            "snapshot": job.identifier,
            "source": job.source.id,
            "source_time": iso(job.source.time),
            "kms_key": job.kms_key,
            "order": order.get(id(plan), (None, None))[0],
            "overdue_seconds": None if plan.newest_available is None else int(plan.overdue.total_seconds()),
            "why": _why_this_copy(plan, order),
        },
        "skip": _reason_dict(plan.skip),
        "defer": _reason_dict(plan.defer),
        "fail": None if plan.fail is None else {"error": plan.fail[0], "message": plan.fail[1]},
        "waiting": plan.waiting,
        "delete": [{"snapshot": s.id, "time": iso(s.time), "reason": _delete_reason(plan, s)} for s in plan.delete],
        "pending": _pending_dicts(plan.pending, plan.policy.spec() if plan.policy else None),
        "keep": _kept_dicts(plan.kept),
        "in_flight": [_copying_dict(s) for s in plan.in_flight],
        "stuck": [_copying_dict(s) for s in plan.stuck],
    }


def _start_order(plan: DrPlan) -> dict[int, tuple[int, int]]:
    """id(target plan) -> (its place, how many) among the copies that start in its region, most overdue first."""
    order: dict[int, tuple[int, int]] = {}
    for region in {t.region for t in plan.targets}:
        starting = plan.copies(region)
        order.update({id(t): (n, len(starting)) for n, t in enumerate(starting, 1)})
    return order


def _why_this_copy(plan: TargetPlan, order: Mapping[int, tuple[int, int]]) -> str:
    assert plan.copy is not None
    behind = (
        "no copy of it there yet"
        if plan.newest_available is None
        else f"its newest copy there is {age_text(plan.overdue)} older than this slot"
    )
    source = f"{plan.copy.source.id} is the newest available snapshot taken in the DR slot"
    if id(plan) not in order:
        return f"{source}; {behind}"
    place, count = order[id(plan)]
    return f"{source}; {ordinal(place)} of {count} to start in {plan.region}, most overdue first: {behind}"


def _in_flight_text(plan: TargetPlan, copy: Snapshot) -> str:
    if copy not in plan.in_flight:
        return ""
    done = "" if copy.progress is None else f"{copy.progress}% "
    stuck = "; STUCK, never cancelled: see the DrCopyStuck alarm" if copy in plan.stuck else ""
    return f"; {done}copied since {when(copy.created)}{stuck}"


def _delete_reason(plan: TargetPlan, copy: Snapshot) -> str:
    if copy in plan.failed:
        return "the copy ended failed: deleted, and the next run copies the slot again"
    spec = plan.policy.spec() if plan.policy is not None else "?"
    if plan.cluster is None:
        return f"not kept by the DR policy recorded on the newest copy ({spec}); the cluster left DR"
    return f"not kept by the DR policy ({spec})"


def render_dr_plan(plan: DrPlan) -> str:
    order = _start_order(plan)
    lines = ["", "DR copies: what a run would copy and delete now (nothing is changed)"]
    if not plan.targets and not plan.errors and not plan.unreadable:
        lines.append("No cluster carries a DR tag, and no copies of ours are left to prune.")
    for region, why in plan.unreadable.items():
        lines.append(
            f"{region} could not be read: no copy is started or deleted, and no snapshot of a DR-tagged cluster "
            f"is deleted ({why})"
        )
    for error in plan.errors:
        lines += ["", error.cluster_id, render_pairs([("error", f"{error.message}; none of its copies is deleted")])]
    for target in plan.targets:
        heading = f"{target.cluster_id} -> {_target_text(target.target.name if target.target else None, target.region)}"
        if target.cluster is None:
            heading += "  (left DR: pruned by the recorded DR policy)"
        lines += ["", heading, render_pairs(_target_pairs(target, order))]
    return "\n".join(lines)


def _target_pairs(plan: TargetPlan, order: Mapping[int, tuple[int, int]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if plan.policy is not None:
        name = f"{plan.policy.name}: " if plan.policy.name else ""
        pairs.append(("policy", name + plan.policy.describe()))
    if plan.slot is not None:
        pairs.append(("slot", when(plan.slot)))
    if plan.fail is not None:
        pairs.append(("fail", f"{plan.fail[0]}: {plan.fail[1]}"))
    elif plan.skip is not None:
        pairs.append(("skip", f"{plan.skip[0].value}: {plan.skip[1]}"))
    elif plan.copy is not None:
        pairs.append(("copy", f"{plan.copy.identifier} from {plan.copy.source.id} ({_why_this_copy(plan, order)})"))
        if plan.defer is not None:
            pairs.append(("defer", f"{plan.defer[0].value}: {plan.defer[1]}"))
    elif plan.waiting is not None:
        pairs.append(("copy", f"nothing yet: {plan.waiting}"))
    elif plan.cluster is not None:
        pairs.append(("copy", "nothing: this DR slot's copy exists or is copying"))
    pairs += [("delete", f"{s.id}  ({when(s.time)}): {_delete_reason(plan, s)}") for s in plan.delete]
    if plan.pending:
        pairs.append(("pending", pending_problem(plan.pending, copies=True)))
    for kept in _kept_newest_first(plan.kept):
        reasons = ", ".join(kept.reasons) + _in_flight_text(plan, kept.snapshot)
        pairs.append(("keep", f"{kept.snapshot.id}  ({when(kept.snapshot.time)}): {reasons}"))
    return pairs


# ---------------------------------------------------------------------------------------------------------
# Argument types


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-27T03:00Z") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0 and at most 86400")
    return seconds

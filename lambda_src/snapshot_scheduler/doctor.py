"""`snapshot-scheduler doctor`: a read-only preflight, one check per line, each ok, warn or fail with what
to do. Plain functions over injected adapters (RDS, and the deployment reader): it changes nothing.

Run it before `cdk deploy` (the account, the fleet as tagged, the local context) and after (the stack, its
schedule, its last run, who its alarms reach).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from snapshot_scheduler import config, tags
from snapshot_scheduler import settings_rules as rules
from snapshot_scheduler.adapters.deployment import (
    DeploymentError,
    DeploymentReader,
    FunctionView,
    StackView,
)
from snapshot_scheduler.adapters.rds import RdsAdapter, RdsError
from snapshot_scheduler.config import Settings
from snapshot_scheduler.demand import QUOTA_CODE, fleet_demand, quota_summary
from snapshot_scheduler.errors import ConfigError
from snapshot_scheduler.model import Cluster, Quota, Reason
from snapshot_scheduler.observability import DEPLOYMENT_DIMENSION, SERVICE_DIMENSION, Metric
from snapshot_scheduler.planning import RunPlan, plan_run
from snapshot_scheduler.policy import is_off
from snapshot_scheduler.service import policy_context
from snapshot_scheduler.vault import Vault

LAMBDA_UNRESERVED_MINIMUM = 100  # Lambda keeps this much of the account's concurrency unreserved
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas: Lambda concurrent executions
QUOTA_WARN_SHARE = 0.8  # demand above this share of the quota leaves too little room for others
HEARTBEAT_LOOKBACK = timedelta(days=2)
CRON_INTERVAL = timedelta(days=1)  # what doctor assumes of a cron schedule's gap
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)\Z")


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    action: str = ""  # what to do about it (empty when ok)

    def to_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status.value, "message": self.message, "action": self.action}


@dataclass(frozen=True)
class LocalContext:
    """What the local CDK context (cdk.json) asks of a deployment not made yet."""

    stack_name: str = "SnapshotScheduler"
    reserved_concurrency: int | None = None
    alarm_emails: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)  # the function's variables it would set
    source: str | None = None  # the file read, None when there is none


@dataclass
class Findings:
    """What the checks read, shared between them: the stack and its function when deployed."""

    stack: StackView | None = None
    function: FunctionView | None = None
    checks: list[Check] = field(default_factory=list)


def exit_status(checks: Sequence[Check]) -> int:
    """0 every check ok, 1 a warning, 2 a failure."""
    statuses = {check.status for check in checks}
    return 2 if Status.FAIL in statuses else 1 if Status.WARN in statuses else 0


def diagnose(
    settings: Settings, rds: RdsAdapter, deployment: DeploymentReader, local: LocalContext, now: datetime
) -> list[Check]:
    """Every check, in the order a person reads them: the deployment, the account, the fleet, the alarms."""
    findings = Findings()
    _guarded(findings, "stack", lambda: check_stack(deployment, local, findings))
    if findings.function is not None:
        try:
            settings = Settings.from_env(findings.function.environment)
        except ConfigError as error:
            findings.checks.append(Check("configuration", Status.FAIL, f"the deployed function's {error}", _REDEPLOY))
    if findings.stack is not None:
        _guarded(findings, "schedule", lambda: check_schedule_and_heartbeat(deployment, findings, settings, now))
    _guarded(findings, "lambda-concurrency", lambda: [check_concurrency(deployment, findings.function, local)])
    vault = settings.vault or _local_vault(local, settings)
    if vault is None:
        _guarded(findings, "fleet", lambda: check_fleet(settings, rds, now))
    else:
        _guarded(findings, "vault-key", lambda: [check_vault_key(deployment, vault, findings.function)])
        _guarded(findings, "vault-shares", lambda: check_shares_arriving(deployment, vault, findings.stack, now))
    _guarded(findings, "alarm-recipients", lambda: [check_alarm_recipients(deployment, findings.stack, local)])
    return findings.checks


_REDEPLOY = "fix the context key the message names and run cdk deploy again"


def _guarded(findings: Findings, name: str, check: Callable[[], list[Check]]) -> None:
    """A read that fails (permissions, the network) fails its check, never the others."""
    try:
        findings.checks.extend(check())
    except (DeploymentError, RdsError) as error:
        findings.checks.append(
            Check(name, Status.FAIL, f"could not read: {error}", "check your credentials' permissions (README, doctor)")
        )


# ---------------------------------------------------------------------------------------------------------
# The deployment


def check_stack(deployment: DeploymentReader, local: LocalContext, findings: Findings) -> list[Check]:
    stack = deployment.stack(local.stack_name)
    if stack is None:
        return [
            Check(
                "stack",
                Status.WARN,
                f"no stack {local.stack_name!r} in this region: nothing runs here yet",
                "deploy it (npx --no-install cdk deploy), or pass --stack with the name it was deployed under",
            )
        ]
    findings.stack = stack
    events = "read its events (aws cloudformation describe-stack-events), fix the cause and deploy again"
    if stack.status == "ROLLBACK_COMPLETE" or stack.status.endswith("_FAILED") or stack.status.startswith("DELETE"):
        return [Check("stack", Status.FAIL, f"stack {stack.name} is {stack.status}: it does not run", events)]
    if stack.status == "UPDATE_ROLLBACK_COMPLETE":
        rolled_back = f"stack {stack.name} is {stack.status}: the last update failed, the version before it runs"
        return [Check("stack", Status.WARN, rolled_back, events)]
    if stack.function is None:
        return [Check("stack", Status.FAIL, f"stack {stack.name} has no Lambda function", _NOT_OURS)]
    findings.function = deployment.function(stack.function)
    return [Check("stack", Status.OK, f"stack {stack.name} is {stack.status}; function {stack.function}")]


_NOT_OURS = "is it a snapshot-scheduler stack? pass --stack with the right name"


def check_schedule_and_heartbeat(
    deployment: DeploymentReader, findings: Findings, settings: Settings, now: datetime
) -> list[Check]:
    function = findings.function
    if function is None:
        return []
    schedules = deployment.schedules_invoking(function.arn)
    if not schedules:
        return [
            Check("schedule", Status.FAIL, f"no schedule invokes {function.name}: nothing runs it", _REDEPLOY_STACK)
        ]
    disabled = [s.name for s in schedules if s.state != "ENABLED"]
    if disabled:
        schedule_check = Check(
            "schedule",
            Status.FAIL,
            f"schedule {', '.join(disabled)} is disabled: no run starts",
            "enable it (aws scheduler update-schedule ... --state ENABLED, or deploy the stack again)",
        )
    else:
        schedule_check = Check(
            "schedule", Status.OK, f"schedule {schedules[0].name} is enabled ({schedules[0].expression})"
        )
    interval = max(_interval(s.expression) for s in schedules)
    return [schedule_check, check_heartbeat(deployment, findings, settings, now, interval)]


_REDEPLOY_STACK = "deploy the stack again (npx --no-install cdk deploy)"


def check_heartbeat(
    deployment: DeploymentReader, findings: Findings, settings: Settings, now: datetime, interval: timedelta
) -> Check:
    """The last run's Heartbeat metric: within twice the schedule's interval, as the alarm watches it."""
    window = 2 * interval
    last = deployment.last_datapoint(
        settings.metrics_namespace,
        Metric.HEARTBEAT.value,
        {SERVICE_DIMENSION: settings.service_name, DEPLOYMENT_DIMENSION: settings.deployment},
        now - max(HEARTBEAT_LOOKBACK, window),
        now,
    )
    created = findings.stack.created if findings.stack is not None else None
    if last is not None and now - last <= window:
        return Check("heartbeat", Status.OK, f"the last run reported {_ago(now - last)} ago")
    if last is None and created is not None and now - created <= window:
        return Check("heartbeat", Status.OK, f"no run has reported yet; the stack is {_ago(now - created)} old")
    seen = "no run has reported in two days" if last is None else f"the last run reported {_ago(now - last)} ago"
    return Check(
        "heartbeat",
        Status.FAIL,
        f"{seen} (runs are due every {_ago(interval)})",
        "check the function's Errors and Throttles and its log group, and that the schedule is enabled",
    )


def _interval(expression: str) -> timedelta:
    match = _RATE.match(expression.strip())
    if match is None:
        return CRON_INTERVAL
    count, unit = int(match.group(1)), match.group(2).rstrip("s")
    return timedelta(**{f"{unit}s": count})


def _ago(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    if minutes < 48 * 60:
        return f"{minutes // 60} hours"
    return f"{minutes // (24 * 60)} days"


# ---------------------------------------------------------------------------------------------------------
# The account


def check_concurrency(deployment: DeploymentReader, function: FunctionView | None, local: LocalContext) -> Check:
    """Lambda keeps 100 units of the account's concurrency unreserved: a reservation must leave that."""
    account = deployment.account_concurrency()
    pool = f"account limit {account.limit}, unreserved {account.unreserved}"
    if function is not None and function.reserved is not None:
        return Check("lambda-concurrency", Status.OK, f"the function reserves {function.reserved} ({pool})")
    wanted = local.reserved_concurrency
    if wanted is None:
        return Check(
            "lambda-concurrency",
            Status.OK,
            f"nothing reserved (reservedConcurrency unset): runs use the unreserved pool ({pool})",
        )
    left = account.unreserved - wanted
    if left < LAMBDA_UNRESERVED_MINIMUM:
        return Check(
            "lambda-concurrency",
            Status.FAIL,
            f"reservedConcurrency={wanted} would leave {left} unreserved, below the {LAMBDA_UNRESERVED_MINIMUM} "
            f"Lambda keeps: cdk deploy would fail and roll back ({pool})",
            f"leave reservedConcurrency unset, or raise Lambda concurrent executions (Service Quotas "
            f"{LAMBDA_CONCURRENCY_QUOTA}) to at least {account.limit + LAMBDA_UNRESERVED_MINIMUM - left}",
        )
    return Check("lambda-concurrency", Status.OK, f"reservedConcurrency={wanted} fits ({pool})")


# ---------------------------------------------------------------------------------------------------------
# The fleet as tagged


def check_fleet(settings: Settings, rds: RdsAdapter, now: datetime) -> list[Check]:
    everything = rds.clusters(None)
    managed = [c for c in everything if c.engine in settings.engines]
    snapshots = rds.manual_snapshots()
    quota = rds.quota()
    plan = plan_run(policy_context(settings), managed, snapshots, now)
    demand = fleet_demand(plan.clusters, snapshots, settings.deployment)
    return [
        check_quota(quota, quota_summary(demand, quota.max if quota else None), demand.total),
        check_engines(settings, everything),
        check_policy_tags(plan),
        check_inherited_holds(settings, managed),
    ]


def check_quota(quota: Quota | None, summary: str, need: int | None) -> Check:
    raise_it = f"raise the quota in Service Quotas ({QUOTA_CODE}), or keep fewer snapshots (policy keep- words)"
    if need is None:
        endless = "give each keep- word a count instead of all; for a cluster passing on its hold, see hold-tags"
        return Check("snapshot-quota", Status.WARN, summary, endless)
    if quota is None:
        return Check("snapshot-quota", Status.WARN, summary, "allow rds:DescribeAccountAttributes to compare")
    if need > quota.max:
        return Check("snapshot-quota", Status.FAIL, summary, raise_it)
    if need > QUOTA_WARN_SHARE * quota.max:
        return Check(
            "snapshot-quota", Status.WARN, summary + f"; less than {1 - QUOTA_WARN_SHARE:.0%} to spare", raise_it
        )
    return Check("snapshot-quota", Status.OK, summary)


def check_engines(settings: Settings, clusters: Sequence[Cluster]) -> Check:
    tagged = [c for c in clusters if c.engine not in settings.engines and _tagged(settings, c)]
    if not tagged:
        return Check("engines", Status.OK, "every cluster carrying the policy tag has a managed engine")
    names = ", ".join(f"{c.id} ({c.engine})" for c in tagged)
    return Check(
        "engines",
        Status.WARN,
        f"no snapshots for {_count(tagged, 'cluster')} with {settings.policy_tag_key} whose engine is not "
        f"managed: {names}",
        "add the engine to the engines context key if it is an Aurora or RDS Multi-AZ engine, or remove the tag",
    )


def check_policy_tags(plan: RunPlan) -> Check:
    bad = [
        p for p in plan.clusters if p.cluster is not None and p.skip is not None and p.skip[0] is Reason.POLICY_ERROR
    ]
    if not bad:
        return Check("policy-tags", Status.OK, f"{_count(plan.managed, 'cluster')} with a valid policy tag")
    reasons = "; ".join(f"{p.cluster_id}: {p.skip[1]}" for p in bad if p.skip is not None)
    return Check(
        "policy-tags",
        Status.FAIL,
        f"no snapshots for {_count(bad, 'cluster')} while the tag cannot be read: {reasons}",
        'fix the tag (snapshot-scheduler policy check "<value>" explains it)',
    )


def check_inherited_holds(settings: Settings, clusters: Sequence[Cluster]) -> Check:
    inheriting = [(c, key) for c in clusters if (key := c.inherited_hold) is not None and _tagged(settings, c)]
    if not inheriting:
        return Check("hold-tags", Status.OK, "no managed cluster passes a hold tag to its snapshots")
    names = ", ".join(f"{c.id} ({key}={c.tags[key]!r})" for c, key in inheriting)
    return Check(
        "hold-tags",
        Status.WARN,
        f"copying tags to snapshots, with a {tags.HOLD} tag: {names}. RDS may authorise inherited tags as "
        "if requested, and the stack denies setting a hold: then every snapshot fails with access denied; "
        "else every snapshot inherits the hold and is never pruned",
        f"remove the {tags.HOLD} tag from the cluster (holds belong on snapshots), or turn off "
        "CopyTagsToSnapshot (aws rds modify-db-cluster --no-copy-tags-to-snapshot)",
    )


def _tagged(settings: Settings, cluster: Cluster) -> bool:
    return not is_off(cluster.tags.get(settings.policy_tag_key))


def _count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


# ---------------------------------------------------------------------------------------------------------
# A vault (issue 11): its key, and the shares of each source


def _local_vault(local: LocalContext, settings: Settings) -> Vault | None:
    """The vault the local context asks for, before it is deployed (a value doctor cannot read: none)."""
    text = local.environment.get(config.VAULT)
    try:
        return rules.vault(json.loads(text), at=settings.default_at, tz=settings.default_tz) if text else None
    except (ValueError, rules.RuleError):
        return None


_VAULT_KEY_POLICY = "add the statement README gives (A vault in another account, step 1) naming the function's role"


def check_vault_key(deployment: DeploymentReader, vault: Vault, function: FunctionView | None) -> Check:
    """The vault key exists, is enabled, and its policy lets the function's role create grants (RDS's, for
    the copies): read from the key policy, as far as a policy can be read without IAM's evaluation."""
    if vault.kms_key is None:
        return Check(
            "vault-key",
            Status.WARN,
            "the vault has no kmsKey: a source's encrypted snapshots are skipped (kms), only unencrypted ones copied",
            "create a customer managed key in the vault's region and set vault.kmsKey",
        )
    key = deployment.kms_key(vault.kms_key)
    if key is None:
        return Check("vault-key", Status.FAIL, f"no KMS key {vault.kms_key} in this region: every encrypted copy fails",
                     "create it (README, A vault in another account, step 1), or correct vault.kmsKey")  # fmt: skip
    if key.state != "Enabled":
        return Check("vault-key", Status.FAIL, f"the vault key {key.arn} is {key.state}: encrypted copies fail",
                     "enable it (aws kms enable-key, or cancel-key-deletion first)")  # fmt: skip
    if function is None or not function.role:
        return Check("vault-key", Status.OK, f"the vault key {key.arn} is enabled; deploy, then run doctor again to "
                     "check that its policy names the function's role")  # fmt: skip
    verdict = grants_allowed(key.policy, function.role)
    if verdict is True:
        return Check(
            "vault-key", Status.OK, f"the vault key {key.arn} is enabled and lets {function.role} create grants"
        )
    problem = "denies" if verdict is False else "does not let"
    return Check(
        "vault-key",
        Status.FAIL,
        f"the vault key's policy {problem} {function.role} create grants (kms:CreateGrant): every encrypted "
        "copy fails with KMSKeyNotAccessibleFault",
        _VAULT_KEY_POLICY,
    )


def grants_allowed(policy: Mapping[str, Any], role: str) -> bool | None:
    """Whether a key policy lets `role` call kms:CreateGrant: True when a statement allows it to the role or to
    its account (the root principal hands the decision to IAM, and the stack grants the role CreateGrant),
    False when one denies it, None when none speaks of it. Of conditions only kms:GrantIsForAWSResource is
    understood (RDS's grants satisfy it): an allow under any other condition does not count."""
    account = role.split(":")[4]
    verdicts = set()
    for statement in _as_list(policy.get("Statement", [])):
        principals = _principals(statement)
        ours = any(p in (role, account, "*") or p.endswith(f":iam::{account}:root") for p in principals)
        actions = [str(action).lower() for action in _as_list(statement.get("Action", []))]
        if not ours or not any(fnmatch.fnmatchcase("kms:creategrant", action) for action in actions):
            continue
        keys = {key.lower() for keys in (statement.get("Condition") or {}).values() for key in keys}
        if statement.get("Effect") == "Deny":
            verdicts.add(False)
        elif keys <= {"kms:grantisforawsresource"}:
            verdicts.add(True)
    return False if False in verdicts else (True if True in verdicts else None)


def _principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal", [])
    if isinstance(principal, dict):
        principal = principal.get("AWS", [])
    return [str(p) for p in _as_list(principal)]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_shares_arriving(
    deployment: DeploymentReader, vault: Vault, stack: StackView | None, now: datetime
) -> list[Check]:
    """Each configured source shared a snapshot created within sharesExpectedHours (what VaultSharesMissing
    watches from the run's side)."""
    window = vault.shares_expected
    young = stack is not None and stack.created is not None and now - stack.created <= window
    checks = []
    for account, region in vault.source_keys:
        newest = deployment.newest_share(account, region)
        where = f"source {account} in {region}"
        if newest is not None and now - newest <= window:
            checks.append(Check("vault-shares", Status.OK, f"{where} shared a snapshot taken {_ago(now - newest)} ago"))
            continue
        seen = (
            "has shared no snapshot with this account"
            if newest is None
            else (f"shared nothing newer than {_ago(now - newest)} ago")
        )
        checks.append(
            Check(
                "vault-shares",
                Status.WARN if young and newest is None else Status.FAIL,
                f"{where} {seen} (sharesExpectedHours {int(window.total_seconds() // 3600)})",
                "in the source account: its deployment names this account in drTargets, its clusters carry the DR "
                "tag to= that target and a customer managed key this account may use (its run report's dr "
                "entries: shared, kms-default-key); if none of that changed, check CloudTrail there",
            )
        )
    return checks


# ---------------------------------------------------------------------------------------------------------
# The alarms


def check_alarm_recipients(deployment: DeploymentReader, stack: StackView | None, local: LocalContext) -> Check:
    subscribe = "set alarmEmails in the context and deploy again (each address must confirm the e-mail AWS sends)"
    if stack is None or stack.topic is None:
        if local.alarm_emails:
            return Check(
                "alarm-recipients", Status.OK, f"alarmEmails: {', '.join(local.alarm_emails)} ({local.source})"
            )
        return Check("alarm-recipients", Status.WARN, "alarmEmails is empty: the alarms will notify no one", subscribe)
    subscriptions = deployment.subscriptions(stack.topic)
    confirmed = [s.endpoint for s in subscriptions if s.confirmed]
    pending = [s.endpoint for s in subscriptions if not s.confirmed]
    if confirmed:
        waiting = f"; {len(pending)} still to confirm" if pending else ""
        return Check("alarm-recipients", Status.OK, f"alarms reach {', '.join(confirmed)}{waiting}")
    if pending:
        return Check(
            "alarm-recipients",
            Status.WARN,
            f"no alarm recipient has confirmed: {', '.join(pending)} await confirmation",
            "confirm the subscription from the e-mail AWS Notifications sent",
        )
    return Check(
        "alarm-recipients",
        Status.WARN,
        f"the alarm topic {stack.topic} has no subscriber: alarms notify no one",
        subscribe,
    )


def render(checks: Sequence[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for check in checks:
        lines.append(f"{check.status.value:<4}  {check.name.ljust(width)}  {check.message}")
        if check.action:
            lines.append(f"{'':<4}  {''.ljust(width)}  -> {check.action}")
    counts = {status: sum(1 for c in checks if c.status is status) for status in Status}
    lines += ["", f"{counts[Status.OK]} ok, {counts[Status.WARN]} warnings, {counts[Status.FAIL]} failures"]
    return "\n".join(lines)


# Context keys (infra/config.py) that decide what a deployment not made yet would do with the fleet, and the
# function's variable each becomes.
_CONTEXT_VARIABLES = {
    "policyTagKey": config.POLICY_TAG_KEY,
    "namedPolicies": config.NAMED_POLICIES,
    "defaultAt": config.DEFAULT_AT,
    "defaultTimezone": config.DEFAULT_TZ,
    "engines": config.ENGINES,
    "deployment": config.DEPLOYMENT,
    "metricNamespace": config.METRICS_NAMESPACE,
    "vault": config.VAULT,
}


def local_context(context: Mapping[str, Any], source: str | None, stack_flag: str | None) -> LocalContext:
    """What a cdk.json context asks for. Values as cdk.json holds them (JSON) or as `-c` gives them (text);
    infra/config.py validates them at synth, and a value doctor cannot read counts as unset."""
    stack_name = stack_flag or str(context.get("stackName") or "SnapshotScheduler")
    environment = {
        variable: _as_variable(context[key])
        for key, variable in _CONTEXT_VARIABLES.items()
        if key in context and _json(context[key]) != {}
    }
    environment.setdefault(config.DEPLOYMENT, stack_name)
    emails = _json(context.get("alarmEmails"))
    reserved = _json(context.get("reservedConcurrency"))
    return LocalContext(
        stack_name=stack_name,
        reserved_concurrency=reserved if isinstance(reserved, int) and not isinstance(reserved, bool) else None,
        alarm_emails=tuple(str(e) for e in emails) if isinstance(emails, list) else (),
        environment=environment,
        source=source,
    )


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _as_variable(value: Any) -> str:
    value = _json(value)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)

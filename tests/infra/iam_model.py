"""IAM's evaluation of identity-policy statements, for the operators and condition keys this stack uses.

An explicit Deny wins, then any Allow, else the implicit deny. A request names one action on one resource
ARN, the tags that resource carries and the tags the request writes. Tag keys inside condition keys are
compared exactly or case-folded (`fold_case`): the RDS and IAM guides disagree, so tests run both. A
statement using an operator or key not modelled here fails loudly: extend the model, never guess.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.infra.service_authorization import render_arn

_RESOURCE_TAG_KEYS = ("rds:cluster-snapshot-tag/", "rds:cluster-tag/", "aws:ResourceTag/")
_REQUEST_TAG_KEYS = ("aws:RequestTag/", "rds:req-tag/")


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    resource_tags: Mapping[str, str] = field(default_factory=dict)
    request_tags: Mapping[str, str] = field(default_factory=dict)
    # Any other condition key the request carries (kms:GrantIsForAWSResource, kms:ResourceAliases...).
    context: Mapping[str, str | list[str]] = field(default_factory=dict)


def _values(expected: Any) -> list[str]:
    return [str(v) for v in (expected if isinstance(expected, list) else [expected])]


def _tag(tags: Mapping[str, str], key: str, fold_case: bool) -> str | None:
    found = [v for k, v in tags.items() if (k.lower() == key.lower() if fold_case else k == key)]
    return found[0] if found else None


def _context_value(request: Request, key: str, fold_case: bool) -> str | list[str] | None:
    if key in request.context:
        return request.context[key]
    for prefix in _RESOURCE_TAG_KEYS:
        if key.startswith(prefix):
            return _tag(request.resource_tags, key.removeprefix(prefix), fold_case)
    for prefix in _REQUEST_TAG_KEYS:
        if key.startswith(prefix):
            return _tag(request.request_tags, key.removeprefix(prefix), fold_case)
    if key == "aws:TagKeys":
        return list(request.request_tags)
    if key.startswith("kms:"):  # absent from this request
        return None
    raise AssertionError(f"condition key {key} not modelled")


def _holds(operator: str, value: str | list[str] | None, expected: Any) -> bool:
    wanted = _values(expected)
    if operator == "Null":  # a multi-valued key without values is absent
        return (value is None or value == []) == (wanted == ["true"])
    if operator == "Bool":  # a missing key fails it
        return isinstance(value, str) and value.lower() == wanted[0].lower()
    if operator.startswith("ForAnyValue:"):
        inner = operator.removeprefix("ForAnyValue:")
        return any(_holds(inner, item, expected) for item in (value or []))
    if operator.startswith("ForAllValues:"):  # true for no values at all: pair it with Null
        inner = operator.removeprefix("ForAllValues:")
        return all(_holds(inner, item, expected) for item in (value or []))
    assert not isinstance(value, list), f"{operator} on a multi-valued key"
    fold = operator.endswith("IgnoreCase")
    base = operator.removesuffix("IgnoreCase")

    def equal(a: str, b: str) -> bool:
        return a.lower() == b.lower() if fold else a == b

    if base == "StringEquals":
        return value is not None and any(equal(value, w) for w in wanted)
    if base == "StringNotEquals":  # true when the key is absent; NOR over the values
        return value is None or not any(equal(value, w) for w in wanted)
    if base == "StringLike":  # * and ? wildcards, case-sensitive
        return value is not None and any(fnmatch.fnmatchcase(value, w) for w in wanted)
    raise AssertionError(f"operator {operator} not modelled")


def applies(statement: Mapping[str, Any], request: Request, *, fold_case: bool) -> bool:
    if not any(fnmatch.fnmatchcase(request.action.lower(), a.lower()) for a in _values(statement["Action"])):
        return False
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return any(fnmatch.fnmatchcase(request.resource, render_arn(r, {})) for r in resources) and all(
        _holds(operator, _context_value(request, key, fold_case), expected)
        for operator, keys in statement.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def allowed(statements: Sequence[Mapping[str, Any]], request: Request, *, fold_case: bool) -> bool:
    matching = [s["Effect"] for s in statements if applies(s, request, fold_case=fold_case)]
    return "Deny" not in matching and "Allow" in matching

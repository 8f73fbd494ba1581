"""LambdaAccount: the fidelity layer's part for Lambda, where moto lacks what doctor reads.

moto has no GetAccountSettings. The layer answers it on a boto3 Lambda client, in-process under `mock_aws`:
the account's concurrency limit as given, and the unreserved share as Lambda computes it, the limit less
every function's reserved concurrency in moto; `denied` answers AccessDeniedException instead, as for
credentials without lambda:GetAccountSettings. (moto's PutFunctionConcurrency enforces a limit only when
MOTO_LAMBDA_CONCURRENCY_QUOTA is set; this layer does not set it.)

    account = LambdaAccount(limit=50)
    client = account.attach(boto3.client("lambda"))
"""

from __future__ import annotations

from typing import Any

from botocore.awsrequest import AWSResponse

ACCOUNT_ID = "123456789012"  # moto's default account


class LambdaAccount:
    def __init__(self, *, limit: int = 1000, denied: bool = False) -> None:
        self.limit = limit
        self.denied = denied  # the caller may not call GetAccountSettings: AccessDeniedException

    def attach(self, client: Any) -> Any:
        if client.meta.service_model.service_name != "lambda":
            raise ValueError(f"LambdaAccount emulates Lambda, not {client.meta.service_model.service_name}")
        region = client.meta.region_name

        def account_settings(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            if self.denied:
                message = "User is not authorized to perform: lambda:GetAccountSettings"
                error = {"Error": {"Code": "AccessDeniedException", "Message": message}}
                return AWSResponse("https://lambda.amazonaws.com/", 403, {}, None), error
            return AWSResponse("https://lambda.amazonaws.com/", 200, {}, None), self.settings(region)

        client.meta.events.register("before-call.lambda.GetAccountSettings", account_settings)
        return client

    def reserved(self, region: str) -> int:
        from moto.awslambda.models import lambda_backends  # noqa: PLC0415 - only once moto is active

        functions = lambda_backends[ACCOUNT_ID][region].list_functions()
        return sum(int(fn.reserved_concurrency or 0) for fn in functions)

    def settings(self, region: str) -> dict[str, Any]:
        """GetAccountSettings as Lambda answers it (the parts that matter here)."""
        return {
            "AccountLimit": {
                "ConcurrentExecutions": self.limit,
                "UnreservedConcurrentExecutions": self.limit - self.reserved(region),
            },
            "AccountUsage": {"FunctionCount": 0, "TotalCodeSize": 0},
        }

"""cdk-nag rule packs, run as CDK validation plugins when the app synthesizes.

Acknowledgments live next to the resources they concern (Validations.of(resource).acknowledge(...)),
each naming the finding and the reason it is deliberate.
"""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks


def add_compliance_checks(app: App) -> None:
    """AwsSolutions and Serverless packs over every stack: an unacknowledged finding fails synthesis."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True), ServerlessChecks(app, verbose=True))

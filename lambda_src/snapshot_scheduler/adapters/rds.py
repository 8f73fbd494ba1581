"""The only module that talks to RDS (placeholder: the real adapter lands with the engine)."""

# Every RDS action the adapter calls; the stack grants exactly these (tests/infra checks it).
IAM_ACTIONS = (
    "rds:DescribeDBClusters",
    "rds:DescribeDBClusterSnapshots",
    "rds:DescribeAccountAttributes",
    "rds:CreateDBClusterSnapshot",
    "rds:AddTagsToResource",
    "rds:DeleteDBClusterSnapshot",
)

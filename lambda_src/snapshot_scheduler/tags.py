"""Tag keys this service reads and writes: a contract with infra/ (IAM conditions) and with operators."""

# On snapshots we create. The marker's value is the deployment (default: the stack name).
MARKER = "snapshot-scheduler:deployment"
POLICY = "snapshot-scheduler:policy"
SLOT = "snapshot-scheduler:slot"
CLUSTER = "snapshot-scheduler:cluster"
OURS = (MARKER, POLICY, SLOT, CLUSTER)

# Set by an operator on a snapshot to keep it whatever the policy says.
HOLD = "snapshot-hold"

# RDS allows at most 50 tags on a resource.
MAX_TAGS = 50

"""snapshot-scheduler: scheduled, tag-driven manual snapshots of Aurora and RDS Multi-AZ DB clusters."""

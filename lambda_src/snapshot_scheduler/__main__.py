"""`python -m snapshot_scheduler ...` (with lambda_src on the path): the same CLI as `snapshot-scheduler`."""

from snapshot_scheduler.cli import main

raise SystemExit(main())

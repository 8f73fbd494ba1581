"""One exception root, so callers can tell our errors from bugs."""


class SnapshotSchedulerError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(SnapshotSchedulerError):
    """The deployment's configuration (environment or CLI input) is missing or malformed."""


class ScheduleError(SnapshotSchedulerError):
    """The run's time cannot be used (it lies ahead of the clock)."""

"""Shared test helpers, imported by module (this package stays light so unit tests do not load moto).

- fidelity: RdsFidelity, the layer that makes moto behave like RDS (pagination, quota, busy clusters,
  creating snapshots, throttling, latency, a simulated clock); TokenBucket; SimClock and RealClock.
- harness: moto_rds() (moto in-process), rds_client(), scheduled_lambda() (the real handler behind the layer).
"""

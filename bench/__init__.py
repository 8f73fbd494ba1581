"""The fleet benchmark (`make bench`): the real handler against the fidelity layer at 100-3,000 clusters.

Kept light: `python -m bench.handler_process` and `python -m bench.cold_start` import this package in
fresh interpreters whose import time and memory are being measured.
"""

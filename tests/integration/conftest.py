"""The integration tier's default suite leaves out tests marked `slow` (a second simulated month); select
them with `-m slow` (or any -m expression naming slow) to run them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        # The marker, not item.keywords: keywords also hold the names of the test's directories.
        if item.get_closest_marker("slow") is not None and HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 in this process (how the demo and the CLI reach moto); its endpoint URL."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the tests over HTTP need it

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()

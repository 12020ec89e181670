"""Shared fixtures of the data tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def refused_url() -> Iterator[str]:
    """An http:// address on this machine that refuses connections (a bound TCP port that
    does not listen, held for the test): a download from it fails at once, with or without
    network access."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()

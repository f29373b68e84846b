import socket

import pytest


def test_outbound_connection_is_refused() -> None:
    with (
        pytest.raises(RuntimeError, match=r"test tried to (reach|resolve)"),
        socket.create_connection(("93.184.216.34", 80), 1),
    ):
        pass


def test_loopback_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), 1):
        pass
    server.close()


def test_raw_connect_to_an_outside_address_is_refused() -> None:
    s = socket.socket()
    try:
        with pytest.raises(RuntimeError, match="test tried to reach the network"):
            s.connect(("10.1.2.3", 443))
    finally:
        s.close()

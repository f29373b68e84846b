import socket

import pytest
from conftest import NetworkAccessError


def test_outbound_connection_is_refused() -> None:
    with pytest.raises(NetworkAccessError), socket.create_connection(("93.184.216.34", 80), 1):
        pass


def test_loopback_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), 1):
        pass
    server.close()

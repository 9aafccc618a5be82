import socket

from deploy.local.ports import ephemeral_range, free_port


def test_free_ports_lie_outside_the_range_outgoing_connections_draw_from_and_are_never_handed_out_twice():
    low, high = ephemeral_range()
    assert low <= high
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    if low - 10_000 >= 1_000:
        assert all(10_000 <= p < low for p in ports)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: a server can take it

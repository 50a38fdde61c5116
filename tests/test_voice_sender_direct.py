"""voice.sender.SocketQueue: a frame with nothing queued before it goes onto the socket at once,
from the caller's greenlet (no writer greenlet woken per frame, issue #16); what the kernel does not
take is queued behind it and written in order; the slow-consumer bound still holds."""
import gevent
from gevent import socket
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from metrotest_bot.voice.sender import SLOW_CONSUMER, SocketQueue


class FakeWs:
    """What SocketQueue uses of simple-websocket's Server: the socket, wsproto, the flags."""

    def __init__(self, sock):
        self.sock = sock
        self.ws = Connection(ConnectionType.SERVER)
        self.connected = True
        self.event = gevent.event.Event()


def decode(data: bytes) -> list[str]:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data)
    return [e.data for e in client.events() if isinstance(e, TextMessage)]


def read_all(sock, timeout=5.0) -> bytes:
    out = b""
    sock.settimeout(0.2)
    end = gevent.get_hub().loop.now() + timeout
    while gevent.get_hub().loop.now() < end:
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            break
        if not data:
            break
        out += data
    return out


def test_a_frame_with_nothing_queued_is_on_the_socket_when_put_returns():
    ours, theirs = socket.socketpair()
    q = SocketQueue(FakeWs(ours), max_queued=1 << 20, stall_timeout=5)
    assert q.put('{"type": "text", "seq": 0}')
    assert q.writer is None and not q.queue  # written here, no writer greenlet
    theirs.setblocking(False)
    assert decode(theirs.recv(65536)) == ['{"type": "text", "seq": 0}']


def test_what_the_kernel_does_not_take_is_queued_and_written_in_order():
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    q = SocketQueue(FakeWs(ours), max_queued=1 << 24, stall_timeout=5)
    frames = [f'{{"seq": {i}, "text": "{"я" * 2000}"}}' for i in range(200)]  # ~800 KB: more than the kernel takes
    for frame in frames:
        assert q.put(frame)
    assert q.queue and q.writer is not None  # the rest waits for the writer
    reader = gevent.spawn(read_all, theirs)
    assert q.drain(10)
    assert decode(reader.get(timeout=15)) == frames


def test_a_client_that_reads_nothing_is_still_cut_off_at_the_queue_bound():
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    q = SocketQueue(FakeWs(ours), max_queued=64 * 1024, stall_timeout=5)
    frame = '{"text": "' + "я" * 4000 + '"}'
    results = [q.put(frame) for _ in range(200)]
    assert False in results and q.failure == SLOW_CONSUMER

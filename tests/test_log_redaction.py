"""The call socket's token never reaches a log line (issue #13): gunicorn's own
error log for a malformed request line included, and logged exceptions."""
import io
import logging
import socket
import time

from metrotest_bot.logredact import redact

from .support.ws_client import CallClient


def _send_raw(server, data: bytes) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        try:
            return s.recv(4096)
        except socket.timeout:
            return b""


def test_gunicorn_logs_no_token_for_malformed_requests(live_server):
    token = live_server.token
    answers = [
        _send_raw(live_server, f"GET /voice/ws?token={token} HTTP/1.1 extra\r\nHost: x\r\n\r\n".encode()),
        _send_raw(live_server, f"GET /voice/ws?token={token} HTTP/7.7\r\nHost: x\r\n\r\n".encode()),
        _send_raw(live_server, f"GET\t/voice/ws?token={token}&x=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
    ]
    assert all(a.startswith(b"HTTP/1.1 400") for a in answers), answers
    call = CallClient.connect(live_server)  # a good call, and a refused one, for the access log
    call.setup()
    call.hangup()
    call.close()
    try:
        CallClient.connect(live_server, token=token + "-wrong").receive()
    except Exception:
        pass
    time.sleep(1.0)  # let the worker flush its log lines
    log = live_server.log()
    assert "Invalid request from ip=" in log  # gunicorn did log the bad request lines…
    assert "token=***" in log  # …with the token masked
    assert token not in log


def test_app_log_lines_and_exceptions_are_redacted(app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("metrotest_bot.test_redaction")
    logger.addHandler(handler)
    try:
        logger.warning("opened %s", "wss://host/voice/ws?token=s3cr3t-A&x=1")
        try:
            raise ValueError("bad URL /voice/ws?token=s3cr3t-B")
        except ValueError:
            logger.exception("failed")
        logger.error({"url": "/voice/ws?Token=s3cr3t-C"})
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "s3cr3t" not in text
    assert "token=***&x=1" in text and "ValueError: bad URL /voice/ws?token=***" in text


def test_redact_masks_every_form_of_the_token():
    assert redact("GET /voice/ws?token=abc-DEF_1 HTTP/1.1") == "GET /voice/ws?token=*** HTTP/1.1"
    assert redact("'/voice/ws?a=1&token=abc&b=2'") == "'/voice/ws?a=1&token=***&b=2'"
    assert redact("url=%2Fvoice%2Fws%3Ftoken%3Dabc") == "url=%2Fvoice%2Fws%3Ftoken%3D***"
    assert redact("access_token=xyz; path") == "access_token=***; path"
    assert redact("no secrets here") == "no secrets here"

"""`textclf serve`: the JSON API on loopback, batching, 4xx JSON errors, clean SIGTERM, a busy port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import assert_one_line_error, cli, train_tiny
from serve_load import MALFORMED, free_port

TEXTCLF = Path(sys.executable).with_name("textclf")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    train_tiny(root, 20, epochs=1)
    run = Path(os.path.realpath(root / "runs" / "latest"))
    port = free_port()
    proc = subprocess.Popen([str(TEXTCLF), "serve", str(run), "--port", str(port), "--name", "news"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert f"on http://127.0.0.1:{port}" in line, line
    yield proc, port, run
    if proc.poll() is None:
        proc.kill()


def _post(port: int, path: str, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_predict_routes_and_health(server):
    _, port, run = server
    status, body = _post(port, "/predict", b'{"texts": ["stocks bank profit", "goal match cup"]}')
    assert status == 200 and len(body["predictions"]) == 2
    p = body["predictions"][0]
    assert p["label"] in p["probabilities"] and abs(sum(p["probabilities"].values()) - 1) < 1e-4
    expected = json.loads(cli("predict", "stocks bank profit", "--run", run, "--json").stdout)
    assert p["label"] == expected["label"] and abs(p["probability"] - expected["probability"]) < 1e-5
    status, body = _post(port, "/v1/models/news:predict", b'{"instances": ["goal match", {"text": "stocks"}]}')
    assert status == 200 and len(body["predictions"]) == 2  # TF Serving's REST predict shape
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/health")
    health = json.loads(conn.getresponse().read())
    assert health["status"] == "ok" and health["model"] == "news" and len(health["labels"]) == 4


def test_concurrent_requests_are_batched_without_errors(server):
    _, port, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/health")
    before = json.loads(conn.getresponse().read())["batches"]
    failures = []

    def client() -> None:
        for _ in range(25):
            status, body = _post(port, "/predict", b'{"text": "stocks bank profit"}')
            if status != 200 or len(body.get("predictions", [])) != 1:
                failures.append((status, body))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn.request("GET", "/health")
    batches = json.loads(conn.getresponse().read())["batches"] - before
    assert failures == [] and 0 < batches <= 200  # 200 requests: some shared a model call


def test_malformed_requests_get_a_4xx_json_error_and_the_server_keeps_serving(server):
    _, port, _ = server
    for body in MALFORMED:
        status, reply = _post(port, "/predict", body)
        assert 400 <= status < 500 and isinstance(reply.get("error"), str) and reply["error"], (body, status, reply)
    for path, body in (("/v1/models/other:predict", b'{"instances": ["a"]}'),
                       ("/v1/models/news:classify", b'{"instances": ["a"]}'),
                       ("/v1/models/news:predict", b'{"texts": ["a"]}')):
        status, reply = _post(port, path, body)
        assert 400 <= status < 500 and reply["error"], (path, reply)
    assert _post(port, "/predict", b'{"text": "stocks"}')[0] == 200


def _reply(sock) -> str:
    """An HTTP reply read until its headers and Content-Length bytes of body are in (or the server closes)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            (data.lower().split(b"content-length: ", 1)[1:] or [b"0"])[0].split(b"\r\n")[0]):
        try:
            piece = sock.recv(65536)
        except OSError:
            break
        if not piece:
            break
        data += piece
    return data.decode("utf-8", "replace")


def test_a_body_larger_than_the_cap_is_refused_before_it_is_read(server):
    """A declared 2 GB body is answered 413 at once, from its headers (the server never holds it)."""
    from textclf.serving import MAX_BODY_BYTES

    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2097152014\r\n\r\n" + b'{"texts": ["' + b"a" * 1000)
        reply = _reply(sock)
    assert reply.startswith("HTTP/1.1 413") and f"larger than {MAX_BODY_BYTES >> 20} MiB" in reply
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # chunked: counted as it arrives
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"a" * (1 << 20)
        try:
            for _ in range((MAX_BODY_BYTES >> 20) + 2):
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        except OSError:  # the server answered and closed before the last pieces
            pass
        reply = _reply(sock)
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert _post(port, "/predict", b'{"text": "stocks"}')[0] == 200  # still serving


def test_a_busy_port_is_one_line(server):
    _, port, run = server
    assert_one_line_error(cli("serve", run, "--port", port), f"cannot serve on 127.0.0.1:{port}", code=1)


def test_sigterm_stops_it_cleanly(server):
    proc, port, _ = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()



def test_sigterm_stops_a_run_without_tensorflow_with_0(tmp_path):
    """A run whose model is arrays (the default ngram-linear: no TensorFlow in the process) stops on SIGTERM
    with exit 0 and no `error: terminated` too (its exit went through the check for a swallowed SIGTERM)."""
    result = cli("train", "--data", "sample", "--runs-root", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    port = free_port()
    proc = subprocess.Popen([str(TEXTCLF), "serve", "--runs-root", str(tmp_path / "runs"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert f"on http://127.0.0.1:{port}" in proc.stderr.readline()
        assert _post(port, "/predict", b'{"text": "stocks"}')[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "error" not in proc.stderr.read()
    finally:
        proc.kill()

"""Load test of `textclf serve` on loopback: N concurrent clients, a fixed count of requests each.

Trains (once) an ngram-mlp run on ag7600's training split, starts `textclf serve` on a free
127.0.0.1 port, and has --clients threads (one keep-alive connection each) send --requests
POST /predict requests of one ag7600 eval headline each. Reports p50/p90/p99 latency,
throughput and errors, then sends 20 malformed requests (each must get a 4xx JSON error) and
checks the server still answers; stops it with SIGTERM (it must exit 0). Table to stdout,
JSON to bench/out/serve_load.json, a section of docs/BENCHMARKS.md.

    .venv/bin/python bench/serve_load.py                     # 8 clients × 500 requests
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from benchlib import ROOT, write_section, write_split

TEXTCLF = Path(sys.executable).parent / "textclf"
MALFORMED = [b"{oops", b"[]", b'"text"', b"{}", b'{"texts": []}', b'{"texts": "a"}', b'{"texts": [1]}',
             b'{"text": ""}', b'{"text": "   "}', b'{"texts": [null]}', b'{"instances": ["a"]}', b"\xff\xfe",
             b'{"text": 5}', b'{"texts": [["a"]]}', b'{"texts": [{"text": 1}]}', b"", b"null", b"3",
             b'{"texts": [""]}', b'{"text": null}', b'{"text": "\\ud800 lone"}',  # a lone surrogate
             b'{"text": "a", "texts": ["b"]}',  # which one?
             b'{"text": "\\u0000\\u0000"}',  # NULs are read as spaces: an empty text
             b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"]  # nested far too deep


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn: http.client.HTTPConnection, body: bytes, path: str = "/predict") -> tuple[int, dict]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def _load(port: int, headlines: list[str], clients: int, requests: int) -> tuple[list, list, float]:
    """`clients` threads, each sending `requests` POST /predict on one keep-alive connection: latencies per
    client, errors, wall seconds."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for i in range(requests):
            text = headlines[(k * requests + i) % len(headlines)]
            started = time.perf_counter()
            try:
                status, body = request(conn, json.dumps({"text": text}).encode())
            except (OSError, http.client.HTTPException, ValueError) as err:
                errors.append(f"{type(err).__name__}: {err}")
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            latencies[k].append(time.perf_counter() - started)
            if status != 200 or "predictions" not in body:
                errors.append(f"status {status}: {body}")
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    return latencies, errors, seconds


def _publish(args, result: dict) -> None:
    """The result as JSON, a printed line and the `serve` section of docs/BENCHMARKS.md."""
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    lat = result["latency_ms"]
    print(f"{result['requests']} requests from {args.clients} clients in {result['seconds']:.1f} s: "
          f"{result['requests_per_second']:,.0f} requests/s, p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
          f"errors {result['errors']}; model batches {result['model_batches']}; malformed 4xx JSON: "
          f"{result['malformed_all_4xx_json']}; served after: {result['served_after_malformed']}; "
          f"exit after SIGTERM: {result['exit_code_after_sigterm']}")
    write_section(args.docs, "serve", "\n".join([
        "## `textclf serve` under load (`bench/serve_load.py`)", "",
        f"Produced by `{result['command'].strip()}` ({result['date']}): `textclf serve` of an ngram-mlp run "
        f"(ag7600), {args.clients} concurrent clients on loopback, each with one keep-alive connection sending "
        f"{args.requests} POST /predict requests of one headline; the 2 cores are shared by clients and server.", "",
        "| requests | errors | requests/s | p50 ms | p90 ms | p99 ms | max ms | model batches |",
        "|---|---|---|---|---|---|---|---|",
        f"| {result['requests']:,} | {result['errors']} | {result['requests_per_second']:,.0f} | {lat['p50']:.1f} | "
        f"{lat['p90']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} | {result['model_batches']:,} |", "",
        f"Then {len(MALFORMED)} malformed requests (not JSON, wrong shapes, empty texts, …): all answered with a "
        f"4xx JSON error: {result['malformed_all_4xx_json']}; the server answered a good request after them: "
        f"{result['served_after_malformed']}; exit code after SIGTERM: {result['exit_code_after_sigterm']}."]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="per client")
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "serve_load.json"))
    parser.add_argument("--docs", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
    runs = ROOT / "bench" / "out" / "serve" / "runs"
    if not (runs / "latest").exists():
        subprocess.run([str(TEXTCLF), "train", "--model", "ngram-mlp", "--data", f"csv:{train_csv}",
                        "--eval-data", f"csv:{eval_csv}", "--runs-root", str(runs)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(eval_csv, newline="", encoding="utf-8") as fh:
        headlines = [row[1] for row in csv.reader(fh)]
    port = free_port()
    server = subprocess.Popen([str(TEXTCLF), "serve", str(runs / "latest"), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = server.stderr.readline()  # "serving … on http://…" once it listens
    if "serving" not in line:
        raise SystemExit(f"textclf serve did not start: {line.strip()}")
    latencies, errors, seconds = _load(port, headlines, args.clients, args.requests)
    flat = sorted(x for per in latencies for x in per)
    q = statistics.quantiles(flat, n=100)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    malformed = []
    for body in MALFORMED:
        status, reply = request(conn, body)
        malformed.append({"body": body.decode("utf-8", "replace"), "status": status, "error": reply.get("error")})
    conn.request("GET", "/health")
    health = json.loads(conn.getresponse().read())
    status, _ = request(conn, json.dumps({"text": "Stocks rally as oil falls"}).encode())
    conn.close()
    server.send_signal(signal.SIGTERM)
    exit_code = server.wait(timeout=60)
    result = {
        "command": "python bench/serve_load.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M"),
        "clients": args.clients, "requests_per_client": args.requests, "requests": len(flat), "errors": len(errors),
        "error_examples": errors[:5], "seconds": seconds, "requests_per_second": len(flat) / seconds,
        "latency_ms": {"p50": 1000 * q[49], "p90": 1000 * q[89], "p99": 1000 * q[98], "max": 1000 * flat[-1]},
        "model_batches": health.get("batches"), "malformed": malformed,
        "malformed_all_4xx_json": all(400 <= m["status"] < 500 and m["error"] for m in malformed),
        "served_after_malformed": status == 200, "exit_code_after_sigterm": exit_code,
    }
    _publish(args, result)
    if errors or not result["malformed_all_4xx_json"] or exit_code != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

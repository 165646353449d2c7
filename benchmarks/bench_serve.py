"""Throughput and latency of `genre-cnn serve` for 30 s mp3 uploads, beside `classify FOLDER`.

Starts the server on a free port (one inference process per core), then uploads the demo tracks
from 1, 2 and 4 concurrent clients (httpx) and reports requests/s and p50/p99 latency; the CLI's
`classify FOLDER --workers <cores>` on the same songs gives the songs/s to compare with.

Run by hand:  python benchmarks/bench_serve.py [--model models/demo] [--tracks tracks] [--requests 68]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from _common import machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "genre_cnn", "serve", "--model", str(model), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 120 s")


def run_clients(url: str, songs: list[Path], *, clients: int, requests: int) -> tuple[float, np.ndarray]:
    payloads = [(song.name, song.read_bytes()) for song in songs]
    work = [payloads[i % len(payloads)] for i in range(requests)]

    def send(payload):
        with httpx.Client(timeout=120) as client:
            started = time.perf_counter()
            answer = client.post(f"{url}/v1/classify", files={"file": payload})
            if answer.status_code != 200:
                raise SystemExit(f"{payload[0]}: {answer.status_code} {answer.text}")
            return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = np.array(list(pool.map(send, work)))
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/demo"))
    parser.add_argument("--tracks", type=Path, default=Path("tracks"))
    parser.add_argument("--requests", type=int, default=68, help="uploads per concurrency level")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (the median is shown)")
    args = parser.parse_args()
    songs = sorted(args.tracks.rglob("*.mp3"))
    cores = os.cpu_count() or 1

    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "genre_cnn", "classify", str(args.tracks), "--model", str(args.model),
                        "--workers", str(cores), "--json"], check=True, capture_output=True)
        rates.append(len(songs) / (time.perf_counter() - started))
    cli_rate = float(np.median(rates))
    print(f"classify FOLDER ({len(songs)} songs, --workers {cores}, process start included): {cli_rate:.1f} songs/s "
          f"(median of {args.repeats})")

    port = free_port()
    server = start_server(args.model, port)
    try:
        url = f"http://127.0.0.1:{port}"
        run_clients(url, songs[:4], clients=2, requests=4)  # warm-up
        print("| clients | requests/s | × CLI | p50 latency | p99 latency |\n|---|---|---|---|---|")
        for clients in (1, 2, 4):
            runs = [run_clients(url, songs, clients=clients, requests=args.requests) for _ in range(args.repeats)]
            rate = float(np.median([args.requests / seconds for seconds, _ in runs]))
            latencies = np.concatenate([latency for _, latency in runs])
            print(f"| {clients} | {rate:.1f} | {rate / cli_rate:.2f} | {np.percentile(latencies, 50):.2f} s "
                  f"| {np.percentile(latencies, 99):.2f} s |")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    print(f"machine: {machine()}; {args.repeats} × {args.requests} uploads of 30 s mp3s per row (median rate, "
          f"latency over all), server with {cores} inference processes")


if __name__ == "__main__":
    main()

"""The model gateway's cost: added latency, throughput, time to first chunk and memory.

    python -m benchmarks.gateway_bench [--seconds 5] [--gateway-cpu 0] [--load-cpu 1]

Three processes on this machine, all on loopback: a fake engine (raw asyncio, answers a chat
completion at once on `/v1/chat/completions`, or streams 20 server-sent events 5 ms apart on
`/v1/stream`), the real gateway (`compose-operator gateway`, pinned to one core with
`taskset`, logging its line per request as in production) and a load generator (raw asyncio
HTTP/1.1 keep-alive clients) pinned with the engine to another core, so the gateway's core is
its own. Every measurement runs the same load twice in the same run, straight at the engine
and through the gateway; the difference is what the gateway adds.

Two kinds of load:
- closed loop: N clients each send the next request as soon as the last answer arrived. The
  rate is the most the gateway's one core serves (requests/s); latency there is mostly
  queueing (N / rate).
- paced: N clients share a fixed total rate below that saturation, each sending at its own
  steady pace, their first sends spread evenly over one interval (as independent clients
  are; in step, N requests would land in one instant and measure a burst's queue). This is
  the latency a client sees from the hop at a given load: the added p50 and p99 at 50
  clients are read here.
Streaming: the time to the first chunk, straight and through the gateway, under 1 and 50
clients streaming at once. RSS: the gateway's resident and peak memory after all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHAT_BODY = json.dumps(
    {
        "model": "ai/gemma3",
        "messages": [{"role": "user", "content": "Name one primary colour."}],
        "max_tokens": 24,
    }
).encode()
ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "ai/gemma3",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Red."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    }
).encode()
STREAM_CHUNKS = 20
STREAM_GAP = 0.005


# --- the fake engine -------------------------------------------------------------------------


class EngineProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, just enough: a request line, headers, a Content-Length body."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            path = head.split(" ", 2)[1]
            self.buffer = self.buffer[end + 4 + length :]
            if path.endswith("/stream"):
                asyncio.get_running_loop().create_task(self.stream())
            else:
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(ANSWER)).encode()
                    + b"\r\n\r\n"
                    + ANSWER
                )

    async def stream(self) -> None:
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for index in range(STREAM_CHUNKS):
            event = b'data: {"choices":[{"delta":{"content":"tok%d"}}]}\n\n' % index
            self.transport.write(b"%x\r\n%s\r\n" % (len(event), event))
            await asyncio.sleep(STREAM_GAP)
        self.transport.write(b"0\r\n\r\n")


async def run_engine(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EngineProtocol, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


# --- the load generator ----------------------------------------------------------------------


def request_bytes(port: int, path: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(CHAT_BODY)}\r\n\r\n"
    ).encode() + CHAT_BODY


async def read_response(reader: asyncio.StreamReader) -> float | None:
    """Reads one response; returns when its first body bytes arrived (chunked) or None."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        first: float | None = None
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if first is None:
                first = time.perf_counter()
            await reader.readexactly(size + 2)
            if size == 0:
                return first
    start = lowered.index(b"content-length:") + len(b"content-length:")
    length = int(lowered[start : lowered.index(b"\r\n", start)])
    await reader.readexactly(length)
    return None


async def client(
    port: int,
    path: str,
    until: float,
    gap: float,
    latencies: list[float],
    firsts: list[float],
    offset: float = 0.0,
) -> None:
    """`offset` delays the first send, so paced clients spread over the gap instead of all
    sending in the same instant (a burst of N that measures queueing, not the hop)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = request_bytes(port, path)
    next_send = time.perf_counter() + offset
    while True:
        now = time.perf_counter()
        if now >= until:
            break
        if gap and now < next_send:
            await asyncio.sleep(next_send - now)
        sent = time.perf_counter()
        writer.write(request)
        first = await read_response(reader)
        done = time.perf_counter()
        latencies.append(done - sent)
        if first is not None:
            firsts.append(first - sent)
        next_send = max(next_send + gap, done) if gap else done
    writer.close()


async def load(
    port: int, path: str, clients: int, seconds: float, rate: float
) -> dict[str, float | int]:
    """`clients` keep-alive connections for `seconds`; `rate` 0 is a closed loop."""
    latencies: list[float] = []
    firsts: list[float] = []
    gap = clients / rate if rate else 0.0
    warm_until = time.perf_counter() + min(1.0, seconds / 5)
    await asyncio.gather(
        *(client(port, path, warm_until, gap, [], []) for _ in range(clients))
    )  # warm-up: connections and the gateway's pool
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(
            client(port, path, until, gap, latencies, firsts, offset=gap * index / clients)
            for index in range(clients)
        )
    )
    elapsed = time.perf_counter() - started
    result: dict[str, float | int] = {
        "requests": len(latencies),
        "rate": len(latencies) / elapsed,
        **percentiles("", latencies),
    }
    if firsts:
        result.update(percentiles("first_", firsts))
    return result


def percentiles(prefix: str, values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        f"{prefix}p50": statistics.median(ordered) * 1000,
        f"{prefix}p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def run_load(argv: list[str]) -> None:
    port, path, clients, seconds, rate = (
        int(argv[0]), argv[1], int(argv[2]), float(argv[3]), float(argv[4]),
    )  # fmt: skip
    print(json.dumps(asyncio.run(load(port, path, clients, seconds, rate))))


# --- the conductor ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout} s")


def pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command]


@dataclass
class Bench:
    engine_port: int
    gateway_port: int
    gateway_pid: int
    load_cpu: int
    seconds: float

    def measure(self, port: int, path: str, clients: int, rate: float = 0) -> dict[str, float]:
        command = [sys.executable, __file__, "--load", str(port), path, str(clients),
                   str(self.seconds), str(rate)]  # fmt: skip
        output = subprocess.run(
            pinned(self.load_cpu, command), capture_output=True, text=True, check=True
        ).stdout
        result: dict[str, float] = json.loads(output)
        return result

    def both(self, path: str, clients: int, rate: float = 0) -> tuple[dict[str, float], ...]:
        direct = self.measure(self.engine_port, path, clients, rate)
        before = cpu_seconds(self.gateway_pid)
        through = self.measure(self.gateway_port, path, clients, rate)
        # The warm-up's requests are not counted: this slightly overstates the cost per request.
        spent = cpu_seconds(self.gateway_pid) - before
        through["cpu_us"] = spent / max(1, through["requests"]) * 1e6
        return direct, through


def rss(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (
        int(fields["VmRSS"].split()[0]) / 1024,
        int(fields["VmHWM"].split()[0]) / 1024,
    )


def cpu_seconds(pid: int) -> float:
    """User and system time: what the gateway itself spent, whatever else ran beside it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    if sys.argv[1:2] == ["--engine"]:
        asyncio.run(run_engine(int(sys.argv[2])))
        return 0
    if sys.argv[1:2] == ["--load"]:
        run_load(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--gateway-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="total requests/s")
    args = parser.parse_args()

    engine_port, gateway_port = free_port(), free_port()
    routes = {
        "app": "bench",
        "namespace": "bench",
        "models": [
            {
                "key": "llm",
                "model": "ai/gemma3",
                "engine": "llama.cpp",
                "upstream": f"http://127.0.0.1:{engine_port}",
                "served": "ai/gemma3",
            }
        ],
        "names": {"ai/gemma3": "llm", "llm": "llm"},
    }
    scratch = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    (scratch / "routes.json").write_text(json.dumps(routes))
    environment = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    engine = subprocess.Popen(
        pinned(args.load_cpu, [sys.executable, __file__, "--engine", str(engine_port)])
    )
    gateway_log = (scratch / "gateway.log").open("wb")
    command = [sys.executable, "-m", "compose_operator.cli", "gateway", "--routes",
               str(scratch / "routes.json"), "--host", "127.0.0.1", "--port", str(gateway_port),
               "--endpoint-delay", "0"]  # fmt: skip
    gateway = subprocess.Popen(
        pinned(args.gateway_cpu, command),
        env=environment,
        stdout=gateway_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_listening(engine_port)
        wait_listening(gateway_port)
        bench = Bench(engine_port, gateway_port, gateway.pid, args.load_cpu, args.seconds)
        print(f"gateway on CPU {args.gateway_cpu}; engine and load on CPU {args.load_cpu}; "
              f"{args.seconds:.0f} s per measurement; the gateway logs a line per request; "
              f"load average before: {os.getloadavg()[0]:.2f} (other work on these cores "
              "inflates every number)")  # fmt: skip
        print("\nnon-streaming chat completions, closed loop (each client sends again at once)")
        print(f"{'clients':>8} {'direct req/s':>13} {'gateway req/s':>14} "
              f"{'direct p50/p99 ms':>18} {'gateway p50/p99 ms':>19} "
              f"{'gateway CPU/req':>16} {'= req/s per core':>17}")  # fmt: skip
        for clients in (1, 50, 200):
            direct, through = bench.both("/v1/chat/completions", clients)
            print(
                f"{clients:>8} {direct['rate']:>13.0f} {through['rate']:>14.0f} "
                f"{direct['p50']:>8.2f}/{direct['p99']:<9.2f} "
                f"{through['p50']:>8.2f}/{through['p99']:<9.2f} "
                f"{through['cpu_us']:>13.0f} us {1e6 / through['cpu_us']:>17.0f}"
            )
        print(f"\nnon-streaming, paced: the clients share {args.paced_rate:.0f} requests/s")
        print(f"{'clients':>8} {'direct p50/p99 ms':>18} {'gateway p50/p99 ms':>19} "
              f"{'added p50/p99 ms':>17}")  # fmt: skip
        for clients in (1, 50, 200):
            rate = min(args.paced_rate, clients * 1000.0)
            direct, through = bench.both("/v1/chat/completions", clients, rate)
            print(
                f"{clients:>8} {direct['p50']:>8.2f}/{direct['p99']:<9.2f} "
                f"{through['p50']:>8.2f}/{through['p99']:<9.2f} "
                f"{through['p50'] - direct['p50']:>7.2f}/"
                f"{through['p99'] - direct['p99']:<8.2f}"
            )
        print(f"\nstreaming: {STREAM_CHUNKS} events {STREAM_GAP * 1000:.0f} ms apart, closed loop")
        print(f"{'clients':>8} {'direct first p50/p99 ms':>24} {'gateway first p50/p99 ms':>25} "
              f"{'gateway streams/s':>18}")  # fmt: skip
        for clients in (1, 50, 200):
            direct, through = bench.both("/v1/stream", clients)
            print(
                f"{clients:>8} {direct['first_p50']:>11.2f}/{direct['first_p99']:<12.2f} "
                f"{through['first_p50']:>11.2f}/{through['first_p99']:<13.2f} "
                f"{through['rate']:>17.0f}"
            )
        resident, peak = rss(gateway.pid)
        print(f"\ngateway memory: RSS {resident:.1f} MiB now, {peak:.1f} MiB at most")
        print(f"gateway CPU: {cpu_seconds(gateway.pid):.1f} s in all")
    finally:
        for process in (gateway, engine):
            process.terminate()
            process.wait(timeout=30)
        gateway_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

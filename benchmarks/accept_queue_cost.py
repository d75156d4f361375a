"""What sampling the accept queue costs loopscope's own process, by each way of reading it.

- per reading: one `sock_diag` netlink query (what `loopscope` uses) against parsing
  `/proc/net/tcp` (what `ss` did before netlink), with 0 and 400 loopback connections open
  beside the listener, median of 5 batches;
- the sampler: the share of one core `ServerSampler` takes at its default period (2 ms), from
  the process's CPU clock over 2 s of sampling.

    python benchmarks/accept_queue_cost.py
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from loopscope.measure.accept_queue import AcceptQueueReader
from loopscope.measure.sampler import DEFAULT_PERIOD_MS, ServerSampler

READINGS = 200


def read_proc_net_tcp(port: int) -> int:
    """The accept queue of `port` the old way: every TCP socket's row, parsed."""
    want = f":{port:04X}"
    depth = 0
    with open("/proc/net/tcp") as rows:
        next(rows)
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and fields[1].endswith(want):
                depth += int(fields[4].split(":")[1], 16)
    return depth


def per_reading_us(read: Callable[[], object]) -> float:
    batches = []
    for _ in range(5):
        # CPU time (user + system) of this process: what a reading costs, however busy the
        # machine is with others' work.
        start = time.process_time()
        for _ in range(READINGS):
            read()
        batches.append((time.process_time() - start) / READINGS * 1e6)
    return statistics.median(batches)


@contextmanager
def listener_with_connections(count: int) -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1024)
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        accepted = [server.accept()[0] for _ in range(count)]
        try:
            yield port
        finally:
            for sock in clients + accepted:
                sock.close()


def main() -> None:
    print("accept queue: CPU cost of one reading (µs, median of 5 batches)")
    print(f"{'connections open':>18} {'sock_diag':>10} {'/proc/net/tcp':>14}")
    for count in (0, 400):
        with listener_with_connections(count) as port, AcceptQueueReader("127.0.0.1", port) as r:
            diag = per_reading_us(r.read)
            proc = per_reading_us(lambda port=port: read_proc_net_tcp(port))  # type: ignore[misc]
        print(f"{count:>18} {diag:>10.1f} {proc:>14.1f}")
    with listener_with_connections(0) as port:
        sampler = ServerSampler("127.0.0.1", port, lambda: [])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sampler.start()
        time.sleep(2.0)
        sampler.stop()
        share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    print(
        f"sampler at {DEFAULT_PERIOD_MS:g} ms: {share:.1%} of one core "
        f"({len(sampler.queue)} samples kept: changes only)"
    )


if __name__ == "__main__":
    main()

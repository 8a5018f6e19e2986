"""Benchmark: one large array through the RPC frame format, against moving its raw bytes.

Both sides run in one process (a writer thread, a reading main thread) over an OS pipe, as the
grader and its worker do. The baseline, measured in the same run, moves the same number of bytes
through the same pipe with no framing at all; the copying encoder is the frame format before
issue 6 (npy written into a BytesIO, blobs joined, read back through a BytesIO), kept here only
to compare. Usage (from the repository root):

    .venv/bin/python benchmarks/rpc_arrays.py --mb 256 --repeat 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import rpc  # noqa: E402


def _through_pipe(send: Callable[[int], None], receive: Callable[[int], Any]) -> tuple[float, Any]:
    read, write = os.pipe()
    writer = threading.Thread(target=send, args=(write,))
    started = time.perf_counter()
    writer.start()
    try:
        value = receive(read)
    finally:
        writer.join()
        os.close(read)
        os.close(write)
    return time.perf_counter() - started, value


def raw_bytes(array: np.ndarray) -> tuple[float, Any]:
    data = memoryview(array.reshape(-1).view(np.uint8))
    return _through_pipe(lambda fd: rpc.write_all(fd, data), lambda fd: rpc._read_exact(fd, len(data), None))


def framed(array: np.ndarray) -> tuple[float, Any]:
    return _through_pipe(
        lambda fd: rpc.write_all(fd, rpc.encode_frame({"id": 1}, array)), lambda fd: rpc.read_frame(fd)["value"]
    )


def copying(array: np.ndarray) -> tuple[float, Any]:
    """The frame format as it was: every array copied into and out of BytesIO buffers."""

    def send(fd: int) -> None:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        payload = b"".join([buffer.getvalue()])
        rpc.write_all(fd, len(payload).to_bytes(8, "big") + payload)

    def receive(fd: int) -> Any:
        size = int.from_bytes(rpc._read_exact(fd, 8, None), "big")
        payload = rpc._read_exact(fd, size, None)
        return np.lib.format.read_array(io.BytesIO(memoryview(payload)), allow_pickle=False)

    return _through_pipe(send, receive)


def measure(
    name: str, run: Callable[[np.ndarray], tuple[float, Any]], array: np.ndarray, repeat: int
) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        seconds, value = run(array)
        times.append(seconds)
        del value
    tracemalloc.start()
    _, value = run(array)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if name != "raw bytes":
        np.testing.assert_array_equal(value, array)
    return {"median_s": round(statistics.median(times), 4), "peak_extra_mb": round(peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    array = np.random.default_rng(0).standard_normal(args.mb * 2**20 // 4).astype(np.float32)
    runs = (("raw bytes", raw_bytes), ("frame (zero-copy)", framed), ("frame (copying, before)", copying))
    results = {name: measure(name, run, array, args.repeat) for name, run in runs}
    base = results["raw bytes"]["median_s"]
    for result in results.values():
        result["ratio_to_raw"] = round(result["median_s"] / base, 2)
    print(json.dumps({"array_mb": args.mb, "repeat": args.repeat, "results": results}, indent=2))


if __name__ == "__main__":
    main()

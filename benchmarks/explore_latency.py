"""Live-mode latency of the explorer (issue 16's target: an update of the digits or MNIST
model answers in <= 200 ms): the median of 20 requests over HTTP on this machine.

    python -m benchmarks.explore_latency [--model digits|mnist|PATH] [--requests 20]

Starts ``clearconv serve``'s server in this process (127.0.0.1, a free port) and posts
a drawn digit (a PNG, as the page's canvas sends it) ``--requests`` times after two
warm-up requests: the update (``details=0``: the feature maps, the prediction and every
gradient map, what the page redraws first) and the breakdowns (``details=1``, which the
page loads right after). Prints the medians and min-max in milliseconds and writes them
to ``--json`` if given. The MNIST model is the benchmark's MNIST CNN (weights as
initialised unless PATH is a trained model: the work does not depend on the values).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import threading
import time

import numpy as np
from PIL import Image


def _drawn_digit(size: int = 224) -> bytes:
    """A '7' in white strokes on black, as the page's 224x224 canvas draws it."""
    a = np.zeros((size, size), np.uint8)
    a[40:60, 50:170] = 255
    for r in range(60, 190):
        c = int(170 - (r - 60) * 0.55)
        a[r, c - 10:c + 10] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _model(name: str):
    from clearconv.train import load, zoo

    if name == "digits":
        from clearconv.explore import resolve_model

        return resolve_model(None)[0]
    if name == "mnist":
        return zoo.mnist_cnn(rng=0)
    return load(name)


def measure(model_name: str, requests: int = 20) -> dict[str, object]:
    from clearconv.explore.server import ExplorerApp, ExplorerServer

    server = ExplorerServer(ExplorerApp(_model(model_name), model_name), "127.0.0.1", 0,
                            quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    body = _drawn_digit()
    host, port = server.server_address[:2]
    result: dict[str, object] = {"model": model_name, "requests": requests}
    try:
        for details in (0, 1):
            times = []
            for i in range(requests + 2):
                conn = http.client.HTTPConnection(host, port, timeout=60)
                t0 = time.perf_counter()
                conn.request("POST", f"/api/explore?details={details}", body=body)
                reply = conn.getresponse()
                data = reply.read()
                elapsed = (time.perf_counter() - t0) * 1000
                conn.close()
                if reply.status != 200:
                    raise RuntimeError(f"server answered {reply.status}: {data[:200]!r}")
                if i >= 2:                           # two warm-up requests
                    times.append(elapsed)
            key = "update" if details == 0 else "breakdowns"
            result[key] = {"median_ms": statistics.median(times), "min_ms": min(times),
                           "max_ms": max(times), "bytes": len(data)}
    finally:
        server.shutdown()
        server.server_close()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=None,
                   help="digits, mnist or a saved model (repeatable; default digits and mnist)")
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    results = [measure(m, args.requests) for m in (args.model or ["digits", "mnist"])]
    for r in results:
        for key in ("update", "breakdowns"):
            t = r[key]
            print(f"{r['model']:>8} {key:>10}: median {t['median_ms']:7.1f} ms  (min "
                  f"{t['min_ms']:.1f}, max {t['max_ms']:.1f}; {t['bytes'] / 1e6:.2f} MB, "
                  f"{r['requests']} requests)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

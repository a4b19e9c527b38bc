"""Live-mode latency of the explorer (issue 16's target: an update of the digits or MNIST
model answers in <= 200 ms): the median of 20 requests over HTTP on this machine.

    python -m benchmarks.explore_latency [--model digits|mnist|PATH] [--requests 20]
    python -m benchmarks.explore_latency --page explorer.html [--page mnist.html]

Starts ``clearconv serve``'s server in this process (127.0.0.1, a free port) and posts
a drawn digit (a PNG, as the page's canvas sends it) ``--requests`` times after two
warm-up requests: the update (``details=0``: the feature maps, the prediction and every
gradient map, what the page redraws first) and the breakdowns (``details=1``, which the
page loads right after). Prints the medians and min-max in milliseconds and writes them
to ``--json`` if given. The MNIST model is the benchmark's MNIST CNN (weights as
initialised unless PATH is a trained model: the work does not depend on the values).

``--page FILE`` instead opens an explorer file in headless Chromium (the system
``chromium`` through Playwright) five times and prints the seconds until the overview is
drawn (the page sets ``data-ready``), with the page's own decode and draw times.
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


def page_open(path: str, rounds: int = 5) -> dict[str, object]:
    """Seconds from navigation to the drawn overview of an explorer file, in Chromium."""
    import shutil
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs the system chromium (apt-get install chromium)")
    seconds, inner = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t0 = time.perf_counter()
            page.goto(Path(path).resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=60000)
            seconds.append(time.perf_counter() - t0)
            inner.append(page.evaluate("window.CC.timing"))
            page.close()
        browser.close()
    return {"page": path, "bytes": Path(path).stat().st_size,
            "median_s": statistics.median(seconds), "max_s": max(seconds),
            "decode_ms": statistics.median(t["decode_ms"] for t in inner),
            "draw_ms": statistics.median(t["total_ms"] - t["decode_ms"] for t in inner)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=None,
                   help="digits, mnist or a saved model (repeatable; default digits and mnist)")
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--json", default=None)
    p.add_argument("--page", action="append", default=None,
                   help="an explorer HTML file: time its opening in Chromium (repeatable)")
    args = p.parse_args(argv)
    if args.page:
        pages = [page_open(path) for path in args.page]
        for r in pages:
            print(f"{r['page']}: {r['bytes'] / 1e6:.2f} MB, overview drawn after median "
                  f"{r['median_s']:.2f} s (max {r['max_s']:.2f}; decode {r['decode_ms']:.0f} ms, "
                  f"draw {r['draw_ms']:.0f} ms)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(pages, f, indent=2)
        return 0
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

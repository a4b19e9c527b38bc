"""Benchmarks: clearconv against PyTorch on the CPU, side by side in one run.

Run from the repository root::

    python -m benchmarks.run            # full suite, table printed last, JSON in bench-results/
    python -m benchmarks.run --quick    # smoke test, under a minute

Modules:

- :mod:`benchmarks.harness`: paired, interleaved timing (A/B/A/B) and its statistics,
  thread limits, the machine description written to the JSON file;
- :mod:`benchmarks.cases`: the micro cases (conv2d, max pooling, training steps, inference);
- :mod:`benchmarks.torch_nets`: the PyTorch twin of a clearconv ``Sequential``;
- :mod:`benchmarks.epoch`: one training epoch in one framework (peak memory, real MNIST);
- :mod:`benchmarks.worker`: the fresh-process entry point for cases and epochs;
- :mod:`benchmarks.run`: the command line, the table and the JSON file;
- :mod:`benchmarks.flops`: the multiply-adds of a case and its floor at the GEMM rate;
- :mod:`benchmarks.profile`: where a training step's time goes, op by op.

PyTorch is optional: without it the clearconv timings are printed alone, with a note.
"""

"""``python -m clearconv.kernels``: every registered algorithm, in 'auto' order."""

import clearconv  # noqa: F401  (registers the algorithms)
from clearconv.kernels import compiled, registry, threads

print(registry.table())
print(f"\nNumba kernels: {'available' if compiled.AVAILABLE else 'not available'}; "
      f"threads: {threads.get_num_threads()}")

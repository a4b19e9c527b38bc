"""Shared test setup.

The session loads the compiled kernels first (where Numba is installed), as training
does, so that 'auto' chooses the same algorithms whichever test runs first; a fresh
process, which takes the NumPy algorithms for small calls until the kernels are loaded,
is checked in a subprocess by tests/test_startup.py.
"""

from clearconv.kernels import jit

jit.load()

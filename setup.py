"""Builds the Cython tick/diff core. `ANNOTATE=1 python setup.py build_ext --inplace`
also writes gameserver/_core.html, Cython's line-by-line cost annotation."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("gameserver._core", ["gameserver/_core.pyx"], extra_compile_args=["-O2"])],
        language_level=3,
        annotate=os.environ.get("ANNOTATE") == "1",
        compiler_directives={"boundscheck": False, "wraparound": False},
    )
)

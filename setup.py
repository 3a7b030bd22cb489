"""Build script for the optional native scan kernels; metadata lives in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "engine._native",
            sources=["engine/_native.c"],
            # Optional: without a compiler the install still succeeds and the
            # engine falls back to its pure-Python kernel.
            optional=True,
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
)

"""The compiled fingerprint hash (itsmd.correlation._fnv); everything else is in
pyproject.toml. Optional: without a C compiler and Python's headers the package
installs and runs on the Python code, which gives the same fingerprints."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "itsmd.correlation._fnv",
            sources=["daemon/itsmd/correlation/_fnv.c"],
            optional=True,
        )
    ]
)

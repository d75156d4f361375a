"""The probe's C extension; everything else about the package is in pyproject.toml.

`optional=True`: where it cannot be compiled the install still succeeds and the probe runs its
pure-Python hooks (`loopscope.probe.loop`), which do the same, only slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "loopscope.probe._speedups",
            sources=["src/loopscope/probe/_speedups.c"],
            optional=True,
        )
    ]
)

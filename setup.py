"""The one compiled part: media._fastpath, the fan-out's native send path (media/fastpath.py).

Optional: without a C compiler or Python headers (Debian: gcc, python3-dev) the build of
this extension fails, pip still installs golive, and the fan-out runs its Python path
(the startup log says why). Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("media._fastpath", ["media/_fastpath.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall"])])

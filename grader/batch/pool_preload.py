"""Imported by the grading processes' forkserver, and only there (issue 20).

The forkserver imports the modules named in GRADER_POOL_PRELOAD (the grader's own, then the
assignment's preload, such as torch) so that every grading process forked from it has them.
multiprocessing's own preload gives up on the first module that raises anything but ImportError
and takes the forkserver down with it; here any failure costs only that module (the grading
process imports it itself). A forkserver left with Python threads running after the imports
cannot fork safely (a thread may hold a lock the children inherit): it exits instead, and the
executor falls back to spawned processes. Native thread pools started by an import (OpenBLAS's,
with numpy) are not counted: they re-create themselves after fork (pthread_atfork).
"""

from __future__ import annotations

import importlib
import os
import threading

PRELOAD_ENV = "GRADER_POOL_PRELOAD"  # set only in the forkserver's environment (executors.pool_context)
_names = os.environ.get(PRELOAD_ENV)

# Only in the forkserver: anywhere else (a grader with threads that imports this by mistake) the
# thread check below would end the process.
if _names is not None:
    for _name in filter(None, _names.split(",")):
        try:
            importlib.import_module(_name)
        except Exception:  # noqa: BLE001, S112 - a module that fails here is imported (and reported) by the job
            continue
    if threading.active_count() != 1:
        os._exit(1)

"""What hidden and visible tests import: ``from grader.testing import points, expect_array, ...``.

Stable import path for course repositories; the plugin lives in ``grader.grading.testing``.
"""

from grader.grading.testing import *  # noqa: F403 - the public surface is that module's __all__
from grader.grading.testing import __all__  # noqa: F401 - re-exported as is

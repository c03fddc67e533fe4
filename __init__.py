"""FiftyOne plugin entry for No Time to Train (``fiftyone.yml`` names the plugin).

Only glue: the library is :mod:`fiftyone_ntt`, the operators live in ``operators/``. When the
library is not installed in the environment FiftyOne runs in, it is imported from this folder.
Nothing heavy is imported until FiftyOne calls :func:`register`.
"""

import importlib.util
import os
import sys

_PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))

if importlib.util.find_spec("fiftyone_ntt") is None:
    sys.path.insert(0, _PLUGIN_DIR)


def register(p):
    """Registers the plugin's operators (called by FiftyOne with its plugin context)."""
    from .operators import register as register_operators

    register_operators(p)

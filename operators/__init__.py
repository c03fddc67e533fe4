"""The plugin's operators: glue between the FiftyOne App and :mod:`fiftyone_ntt`.

One operator per module; :func:`register` is called by the plugin entry (``../__init__.py``).
Every operator registered here must also be listed under ``operators:`` in ``fiftyone.yml``.
"""

from .about import NTTAbout

OPERATORS = (NTTAbout,)


def register(p):
    for operator in OPERATORS:
        p.register(operator)

"""The only part of fiftyone_ntt that imports FiftyOne: adapters between FiftyOne datasets and
the library's types, and the demo dataset (:mod:`fiftyone_ntt.fiftyone.demo`).

The core modules (everything outside this package) never import fiftyone; a unit test
enforces it.
"""

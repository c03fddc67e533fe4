"""Memory banks of a dataset, in order of dependence: keys (names and files) -> history
(versions and their differences) -> index (list, get, load, delete, versions) -> inputs
(the tagged instances a build reads) -> build.
"""

"""``python -m fiftyone_ntt.fiftyone.protocols``: the same command as ``fiftyone-ntt protocol``
(:mod:`fiftyone_ntt.cli.protocol`, the top layer)."""

from fiftyone_ntt.cli.protocol import main

if __name__ == "__main__":
    raise SystemExit(main())

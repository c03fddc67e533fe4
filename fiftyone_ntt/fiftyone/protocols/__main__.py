"""``python -m fiftyone_ntt.fiftyone.protocols``."""

from fiftyone_ntt.fiftyone.protocols.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m fiftyone_ntt.cli``: the same as the ``fiftyone-ntt`` command."""

import sys

from fiftyone_ntt.cli import main

if __name__ == "__main__":
    sys.exit(main())

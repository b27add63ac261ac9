"""``python -m lifelong``: the same command line as ``lifelong``."""

import sys

from .cli import main

sys.exit(main())

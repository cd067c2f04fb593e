"""``python -m multilevel``: the command line (as ``multilevel`` and ``python -m multilevel.cli``)."""

import sys

from .cli import main

sys.exit(main())

"""``python -m multilevel.cli``."""

import sys

from . import main

sys.exit(main())

"""``python -m profilis_operator``: the same as ``profilis-operator``."""

import sys

from profilis_operator.cli import main

sys.exit(main())

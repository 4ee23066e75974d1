"""``python -m profilis_sidecar``: the same as the ``profilis-sidecar`` command."""

import sys

from profilis_sidecar.cli import main

sys.exit(main())

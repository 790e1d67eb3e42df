"""``python -m app …``: the command line (see :mod:`app.cli`)."""

import sys

from app.cli import main

sys.exit(main())

"""``python -m app …``: the command line (see :mod:`app.cli`)."""

import sys

try:
    from app.cli import main
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
except Exception as exc:  # a broken installation: one line, not a traceback
    print(f"internal error: cannot load the command line ({type(exc).__name__}: {exc})".splitlines()[0],
          file=sys.stderr)
    sys.exit(1)

sys.exit(main())

"""Commands of ``python -m app`` kept in their own files.

Each module has ``add(subparsers, cli)``: it adds its parser(s) to ``subparsers`` with
``set_defaults(func=…)``, using the shared helpers of :mod:`app.cli` (``cli._nonempty``,
``cli._report_run``, …), and is listed in :data:`app.cli.EXTRA_COMMANDS`. Errors are
``OceanLabError`` subclasses: :func:`app.cli.main` prints them as one line and exits 2.
"""

"""``python -m lclstream.cli``: the same command line as the ``lclstream`` script."""

from lclstream.cli._app import main

main()

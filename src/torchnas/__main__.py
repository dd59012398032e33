"""``python -m torchnas``: the command line (torchnas.cli)."""
import sys

from .cli import main

sys.exit(main())

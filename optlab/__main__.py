"""Entry point of ``python -m optlab``."""

import sys

from optlab.cli import main

sys.exit(main())

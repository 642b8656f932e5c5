"""``python -m liverseg``."""

import sys

from liverseg.cli.main import main

sys.exit(main())

"""``python -m aegis``: the same as the ``aegis`` console script."""

import sys

from aegis.cli import main

sys.exit(main())

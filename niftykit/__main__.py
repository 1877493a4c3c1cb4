"""``python -m niftykit``: the same as the ``niftykit`` command."""

import sys

from niftykit.cli import main

sys.exit(main())

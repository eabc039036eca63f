"""``python -m spikeloom_conformance NAME ...``: the same as ``spikeloom conformance NAME ...``."""

import sys

from .cli import main

sys.exit(main())

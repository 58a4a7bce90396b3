"""``python -m dcgan`` (and ``torchrun -m dcgan``) runs the command line."""

import sys

from .cli import main

sys.exit(main())

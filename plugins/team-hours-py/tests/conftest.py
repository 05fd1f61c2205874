"""Puts the plugin and the Python guest SDK on the path, as the build script does."""

import sys
from pathlib import Path

here = Path(__file__).resolve()
sys.path[:0] = [str(here.parents[1]), str(here.parents[3] / "guest-sdk" / "python")]

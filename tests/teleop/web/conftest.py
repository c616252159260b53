"""The page's tests use the stand-ins one folder up (teleop_fakes.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

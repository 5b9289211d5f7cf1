"""One discovery-at-scale measurement in this (fresh) process: ``python bench/scale.py COUNT``.

Prints one JSON object (time, peak RSS, index size); bench/run.py calls it once per listing size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_scale import measure  # noqa: E402

if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))

"""`python -m benchmarks`: the benchmark suite (see benchmarks/suite.py)."""

import sys
from pathlib import Path

# The benchmark scripts import each other as top-level modules (harness, loadgen, ...).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite import main

main()

"""`python -m benchmarks`: the benchmark suite (see benchmarks/suite.py)."""

import sys
from pathlib import Path

# The benchmark scripts import each other as top-level modules (harness, loadgen, ...).
sys.path.insert(0, str(Path(__file__).resolve().parent))

if sys.argv[1:2] == ["transcribe"]:
    # `python -m benchmarks transcribe`: the transcription benchmark alone.
    from transcribe import main as transcribe

    transcribe(sys.argv[2:])
else:
    from suite import main

    main()

"""`python -m benchmarks`: compress against PyTorch and Optimum's path (benchmarks/alternatives.py)."""

import sys

from benchmarks.alternatives import main

sys.exit(main())

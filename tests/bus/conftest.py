import sys
from pathlib import Path

# The bus tests share a small harness module with their subprocess worker.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Poisoned copy on the function's PYTHONPATH (tests/layer/test_isolation.py): the sidecar must never import it.
import sys

sys.stderr.write("POISON: requests from the function PYTHONPATH was imported\n")
sys.stderr.flush()
raise ImportError("poisoned requests")

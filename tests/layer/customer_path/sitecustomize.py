# Poisoned: an interpreter that honoured the function's PYTHONPATH and site would run this at start-up.
import sys

sys.stderr.write("POISON: sitecustomize from the function PYTHONPATH was imported\n")
sys.stderr.flush()

"""What each model is: targets, features used, LightGBM parameters, arbitration, reasons."""

import os

# LightGBM's OpenMP threads spin while they wait for each other by default. On a busy
# 2-core machine a spinning thread holds the core the thread it waits for needs: a phase fit
# at 20,000 accounts took 148 s at two threads against 24 s at one (load 8), and 28 s at two
# with waiting threads sleeping. OpenMP reads this once, when LightGBM's library loads, which
# is after this package's first import; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""The bench's phases, one module each; bench/run.py runs them in order (PHASES).

Each module's `run(bench)` measures one thing on the running cluster and returns the figures
that go under its key in the results; common.py holds the steps several phases share.
"""

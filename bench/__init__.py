"""Support code of ``manage.py bench_healing``: worker processes, data set, raw-SQL baseline.

Kept out of the apps and out of tests/ so the benchmark ships with the code
it measures and never depends on the test suite.
"""

"""Benchmarks of the artifact store: speed, flat memory and O(1) cost per operation.

Run ``python -m benchmarks`` (full, under 20 minutes on two cores) or
``python -m benchmarks --quick`` (a seconds-long smoke run). Every figure is
measured beside a baseline in the same run -- what the machine does with the
same bytes and nothing else -- and reported as a ratio, the median of several
runs, in a Markdown table (``benchmarks/RESULTS.md`` by default).
"""

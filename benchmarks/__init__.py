"""Benchmark harness for the paper's Table 3, Fig. 2 and Fig. 3 (see benchmarks/README.md).

``table3`` runs a resumable model x scheme x seed grid (one subprocess per cell, JSONL results),
``tune`` picks hyper-parameters on the clean validation set, ``report`` writes docs/results.md.
"""

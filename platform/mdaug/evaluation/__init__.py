"""Evaluation: do generated spectrograms improve the person classifier? Arms, leakage check, statistics,
report."""

"""Evaluation stage: action extraction, metrics, confidence intervals and the turn-level harness."""

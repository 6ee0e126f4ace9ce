"""Validation: bag-level Pd/Pfa, operating points (box metrics and suites grow here)."""

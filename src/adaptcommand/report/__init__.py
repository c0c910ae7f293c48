"""Report stage: comparisons between runs, plots and the HTML report."""

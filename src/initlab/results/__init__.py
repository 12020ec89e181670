"""Run summaries, sweep aggregation, plots and the report."""

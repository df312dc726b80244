"""hedgearena.baselines: classical hedgers and the scoring arena."""

"""Model fits as resources: BG/NBD, MBG/NBD or Pareto/NBD with Gamma-Gamma, holdout diagnostics, comparison."""

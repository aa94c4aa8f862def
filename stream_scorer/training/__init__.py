"""Training, apart from serving: datasets, feature specs, solvers, calibration fits, reports, baselines."""

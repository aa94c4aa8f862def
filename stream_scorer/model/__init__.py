"""The logistic-regression model: artifact, event features, vectorize, score and train."""

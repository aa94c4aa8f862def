"""stream-scorer: a streaming logistic-regression scoring worker for Kafka."""

__version__ = "0.1.0"

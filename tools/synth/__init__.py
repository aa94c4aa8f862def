"""Synthetic data with a known ground truth: entities, features, events and labels."""

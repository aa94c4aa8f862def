"""Metrics declared once, and the HTTP endpoint that serves them."""

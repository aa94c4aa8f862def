"""Chaos scenarios against the real local stack, with a verifier of what reached the output topics."""

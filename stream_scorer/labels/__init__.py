"""Labels: the late-label join's rolling evaluation of model quality."""

"""Training: stage planning and sample weighting (pure), and the generic stage loop (TensorFlow)."""

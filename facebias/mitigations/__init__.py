"""The mitigations: one module per weighting, sampling or calibration option, each a `Mitigation` (base.py)."""

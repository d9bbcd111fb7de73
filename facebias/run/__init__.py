"""The recipe of one run: identity, resume, sweeps."""

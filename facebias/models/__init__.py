"""Models: a registry of backbones (name → builder, minimum input size), the heads, and their assembly."""

"""The only package that composes effects: workspace, one experiment (trial), the loop, ``try``."""

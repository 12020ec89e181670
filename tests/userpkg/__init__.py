"""A user's own package, as initlab's extension tests see it (on PYTHONPATH via tests/)."""

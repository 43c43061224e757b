"""HTTP edges: one thin adapter per dialect over the core."""

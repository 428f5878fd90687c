"""Weight files: converting published models into checkpoints with metadata."""

"""Checkpoints of a run: written atomically, found in run folders, and read back strictly."""

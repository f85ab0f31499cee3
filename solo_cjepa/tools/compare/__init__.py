"""Side-by-side comparison of self-supervised methods under one budget: ``python -m
solo_cjepa.compare`` trains the shipped configs one after another in subprocesses, evaluates their
frozen features offline and writes a Markdown/CSV report with plots.
"""

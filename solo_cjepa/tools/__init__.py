"""Tools on top of trained runs: offline evaluation, attention-map figures and the side-by-side
comparison. They import the method core and the launchers; nothing imports them.
"""

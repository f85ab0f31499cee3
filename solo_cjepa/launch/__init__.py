"""What ``main_pretrain.py`` and ``main_linear.py`` run: the run sequences (:mod:`.run`), the
input checks, hardware normalisation, per-epoch seeding, checkpoints and the data modules.
Imports the method core, never the tools.
"""

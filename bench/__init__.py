"""Benchmarks of solo-cjepa: training-step throughput, FLOP efficiency and peak memory against
solo's methods, and the mask generator against I-JEPA's loop. Run ``python3 -m bench``."""

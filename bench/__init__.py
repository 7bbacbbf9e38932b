"""`make bench`: what the suite costs, each figure a ratio against the simplest alternative measured
in the same process, so it holds on a noisy machine."""

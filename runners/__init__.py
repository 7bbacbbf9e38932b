"""The engine: one training loop, optimizers, schedules, checkpoints and grids. Knows no dataset."""

"""Run records: where they live, how they are written and read, and what 'reaching the target' means.

This package never imports torch, so the report can read records on any machine.
"""

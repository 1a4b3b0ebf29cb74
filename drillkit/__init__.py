"""drillkit: start, probe, break and check the real components of the writer's Restate setup.

Invoke-free on purpose: every function takes and returns plain values, so `tasks/` stays a thin
layer and tests need no Invoke context.
"""

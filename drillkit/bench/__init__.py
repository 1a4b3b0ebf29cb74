"""Benchmarks: how fast a drill proves recovery, and what Restate's durability costs the writer."""

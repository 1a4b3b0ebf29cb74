"""Drills: the HOW-TO's scenarios run unattended, each ending in a verdict backed by evidence."""

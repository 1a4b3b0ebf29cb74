"""Reference targets: Restate services written the way their teams write them, drilled through a `target:`
section of a config (docs/targets.md). Nothing in drillkit imports them."""

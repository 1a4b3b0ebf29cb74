"""The drills' actions and probes as a Chaos Toolkit extension (chaostoolkit-kubernetes' shape).

Each activity is a plain function with typed arguments whose first argument is the path of a drill
config (`configs/local.yaml`): it builds the stack for that config, does one thing and closes it, so
an experiment (`experiments/*.json`) can chain them as a drill does. The Restate state it needs between
activities (the invocation sent) is the state dir's "last invocation", as for `inv send` / `inv describe`.

`chaos discover restate-writer-drills` (or `discover()`) lists them; chaostoolkit-lib is only needed for
discovery and for `chaos run` (`pip install -e '.[chaos]'`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "discover"]


def discover(discover_system: bool = True) -> Any:
    """The extension's activities, in chaostoolkit-lib's discovery format."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery = initialize_discovery_result("restate-writer-drills", __version__, "restate")
    discovery["activities"].extend(discover_actions("drillkit.chaos.actions"))
    discovery["activities"].extend(discover_probes("drillkit.chaos.probes"))
    return discovery

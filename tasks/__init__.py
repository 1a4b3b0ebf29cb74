"""Invoke tasks: every step of the HOW-TO, and drills that chain them. `inv --list` shows them all.

Each task is a docstring, help for its flags and a few calls into drillkit; the logic lives there. One
module per namespace (stack and howto hold the root's tasks), the flag machinery in `_edge`, and the root
collection assembled here. Every task takes `--config FILE` (default: $RESTATE_WRITER_CONFIG, else
`drill.config` from invoke.yaml / INVOKE_DRILL_CONFIG, else configs/local.yaml).

Exit codes: 0 success (a drill: PASS); 1 failure (a drill: FAIL, or anything that could not be done);
2 usage or config (a flag's value, a config file, a running component started with another config);
3 inconclusive (a drill whose environment failed before the fault could be judged). Every error is one
`error: ...` message on stderr.
"""

from invoke.collection import Collection

from tasks import bench, drill, engine, evaluate, howto, llm, restate_server, service, stack, target

ns = Collection(
    stack.setup,
    stack.up,
    stack.down,
    stack.status,
    howto.register,
    howto.call,
    howto.send,
    howto.kill,
    howto.describe,
    howto.list_invocations,
    howto.resume,
    bench.bench,
    drill.report,
    evaluate.evaluate,
)
for namespace in (restate_server.ns, service.ns, llm.ns, drill.ns, engine.ns, target.ns):
    ns.add_collection(namespace)
ns.configure({"drill": {"config": None}})  # invoke.yaml or INVOKE_DRILL_CONFIG may set it

"""Every task is discoverable, documented, and documents each of its flags."""

import inspect

import pytest

import tasks


def all_tasks(collection, prefix=""):
    for name, task in collection.tasks.items():
        yield prefix + name, task
    for sub_name, sub in collection.collections.items():
        yield from all_tasks(sub, f"{prefix}{sub_name}.")


TASKS = dict(all_tasks(tasks.ns))


def test_the_howto_steps_are_all_there():
    expected = {
        "setup",
        "up",
        "down",
        "status",
        "register",
        "invoke",
        "send",
        "kill",
        "describe",
        "list",
        "resume",
        "restate.start",
        "restate.stop",
        "restate.logs",
        "service.start",
        "service.stop",
        "service.restart",
        "service.logs",
        "llm.start",
        "llm.stop",
    }
    assert expected <= set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_has_a_docstring_and_help_for_every_flag(name):
    task = TASKS[name]
    assert (task.__doc__ or "").strip(), f"{name} has no docstring"
    params = [p for p in inspect.signature(task.body).parameters if p != "c"]
    missing = [p for p in params if p not in task.help]
    assert not missing, f"{name}: no help for {missing}"

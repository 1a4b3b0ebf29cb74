"""The writer's `revision` key: unset it is the shipped writer; revision 2 journals the same steps in the
same order (a journal from revision 1 replays on it) with a changed summary prompt and `revision` in the
output; the incompatible variant journals its first step under another name."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from drillkit.howto import howto_body
from writer_service.agent import WriterRuntime, write_report
from writer_service.config import ConfigError, WriterConfig, step_order
from writer_service.ledger import ExecutionLedger
from writer_service.llm import Answer

MODEL = {"base_url": "http://127.0.0.1:1/v1", "model": "m"}


class RecordingContext:
    """Runs each step at once and keeps the names in the order journaled, as Restate's journal would."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def request(self):
        return SimpleNamespace(id="inv_revision")

    def run_typed(self, name, action, options):
        self.names.append(name)
        return action()


class ScriptedLlm:
    """Answers like the stub model and keeps every prompt it was asked."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def json_answer(self, system, user, name, schema, call=None):
        self.prompts.append(user)
        if name == "outline":
            n = schema["properties"]["sections"]["minItems"]
            text = json.dumps({"research_topic": "Topic", "sections": [f"Part {i}" for i in range(1, n + 1)]})
        else:
            text = json.dumps({"short_summary": "Short.", "follow_up_questions": ["Next?"]})
        return Answer(text, "stop")

    async def text(self, system, user, call=None):
        self.prompts.append(user)
        return "A section."


def run_pipeline(tmp_path, revision=None):
    data = {"writer_model": MODEL, "ledger": {"path": str(tmp_path / "state" / "ledger.jsonl")}}
    if revision is not None:
        data["revision"] = revision
    cfg = WriterConfig.from_mapping(data)
    llm = ScriptedLlm()
    rt = WriterRuntime(cfg, llm=llm, ledger=ExecutionLedger(cfg.ledger.path))  # type: ignore[arg-type]
    body = howto_body()
    body["research_info"]["output_dir"] = str(tmp_path / "out")
    ctx = RecordingContext()
    output = asyncio.run(write_report(ctx, rt, body))  # type: ignore[arg-type]
    return ctx.names, llm.prompts, output


def test_unset_it_is_revision_1_the_shipped_writer():
    cfg = WriterConfig.from_mapping({"writer_model": MODEL})
    assert (cfg.revision.number, cfg.revision.journal, cfg.revision.first_step) == (1, "compatible", "outline")


def test_revision_1_runs_the_shipped_steps_and_output(tmp_path):
    names, prompts, output = run_pipeline(tmp_path)
    assert names == step_order(3)
    assert "revision" not in output
    assert prompts[-1].endswith("Write a short summary and up to three follow-up questions.")


def test_revision_2_journals_the_same_steps_in_the_same_order_and_says_its_number(tmp_path):
    shipped, shipped_prompts, _ = run_pipeline(tmp_path / "r1")
    names, prompts, output = run_pipeline(tmp_path / "r2", {"number": 2})
    assert names == shipped  # what Restate compares at replay: a revision-1 journal replays here
    assert output["revision"] == 2
    assert prompts[:-1] == shipped_prompts[:-1]
    assert prompts[-1] != shipped_prompts[-1]  # its compatible change: the summary's request
    assert "one-sentence summary" in prompts[-1]


def test_the_incompatible_revision_journals_its_first_step_under_another_name(tmp_path):
    shipped, _, _ = run_pipeline(tmp_path / "r1")
    names, _, output = run_pipeline(tmp_path / "r3", {"number": 3, "journal": "incompatible"})
    assert names[0] == "plan" and shipped[0] == "outline"
    assert names[1:] == shipped[1:]
    assert output["revision"] == 3


def test_an_incompatible_revision_1_is_refused_naming_file_field_and_value():
    with pytest.raises(ConfigError) as err:
        WriterConfig.from_mapping(
            {"writer_model": MODEL, "revision": {"number": 1, "journal": "incompatible"}}, source="upgrade.yaml"
        )
    message = str(err.value)
    assert "upgrade.yaml: field revision" in message
    assert "journal: incompatible needs number >= 2" in message


@pytest.mark.parametrize(
    ("revision", "field"),
    [
        ({"number": 0}, "revision.number"),
        ({"journal": "reordered"}, "revision.journal"),
        ({"nmber": 2}, "revision.nmber"),
    ],
)
def test_a_bad_revision_names_its_field(revision, field):
    with pytest.raises(ConfigError) as err:
        WriterConfig.from_mapping({"writer_model": MODEL, "revision": revision}, source="upgrade.yaml")
    assert f"upgrade.yaml: field {field}" in str(err.value)

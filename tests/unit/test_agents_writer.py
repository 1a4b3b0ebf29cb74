"""The Agents SDK target's pure parts: its environment, the seed's body, the tool-fault counter, the
llama.cpp request rewrite, and the local model's chat-template setting that serves it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx2
import pytest

from drillkit import config as drill_config
from drillkit.components.local_model import LocalModel
from drillkit.errors import DrillError
from drillkit.howto import howto_body
from drillkit.procs import ProcessTable
from drillkit.state import StateDir
from targets.agents_writer import settings
from targets.agents_writer.llamacpp import ModelTransport, rewrite_for_forced_tool_call
from targets.agents_writer.models import BadRequest, SaveReportFault, ToolFault, parse_request

ROOT = Path(__file__).resolve().parents[2]

# -- settings -------------------------------------------------------------------------------------------


def test_defaults_serve_the_local_model_on_9081():
    s = settings.load({})
    assert (s.host, s.port, s.base_url, s.model) == ("127.0.0.1", 9081, "http://127.0.0.1:8091/v1", "smollm2")
    assert s.api_key == settings.DUMMY_API_KEY  # the openai client refuses an empty key
    assert s.allowed_roots == (Path("/tmp"),)
    assert (s.tool_fail_first, s.identity_keys, s.tool_call_tag) == (0, (), "")


def test_every_variable_is_read():
    s = settings.load(
        {
            "PORT": "9999",
            "OPENAI_BASE_URL": "http://127.0.0.1:1234/v1",
            "OPENAI_API_KEY": "k",
            "WRITER_MODEL": "m",
            "OPENAI_TIMEOUT_S": "2.5",
            "WRITER_MAX_TOKENS": "64",
            "AGENTS_WRITER_ALLOWED_ROOTS": "/tmp/a:/srv/b",
            "AGENTS_WRITER_TOOL_FAIL_FIRST": "3",
            "RESTATE_IDENTITY_KEY": "publickeyv1_abc, publickeyv1_def",
            "AGENTS_WRITER_FORCE_TOOL_TAG": "tool_call",
        }
    )
    assert (s.port, s.base_url, s.api_key, s.model, s.timeout_s, s.max_tokens) == (
        9999,
        "http://127.0.0.1:1234/v1",
        "k",
        "m",
        2.5,
        64,
    )
    assert s.allowed_roots == (Path("/tmp/a"), Path("/srv/b"))
    assert s.tool_fail_first == 3
    assert s.identity_keys == ("publickeyv1_abc", "publickeyv1_def")
    assert s.tool_call_tag == "tool_call"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("PORT", "http", "not an integer"),
        ("PORT", "0", "at least 1"),
        ("AGENTS_WRITER_TOOL_FAIL_FIRST", "-1", "at least 0"),
        ("OPENAI_TIMEOUT_S", "nan", "finite number"),
        ("OPENAI_TIMEOUT_S", "inf", "finite number"),
        ("OPENAI_BASE_URL", "127.0.0.1:8091/v1", "http:// or https://"),
        ("AGENTS_WRITER_ALLOWED_ROOTS", "tmp", "absolute"),
        ("RESTATE_IDENTITY_KEY", "secret", "publickeyv1_"),
        ("AGENTS_WRITER_FORCE_TOOL_TAG", "<tool_call>", "no brackets"),
    ],
)
def test_a_bad_variable_is_named_with_its_value(name, value, says):
    with pytest.raises(settings.SettingsError) as raised:
        settings.load({name: value})
    assert name in str(raised.value) and repr(value) in str(raised.value) and says in str(raised.value)


# -- the request ----------------------------------------------------------------------------------------


def test_the_seed_body_parses_and_keeps_its_other_fields():
    request = parse_request(howto_body())
    assert request.prompt == howto_body()["prompt"]
    assert request.research_info.output_dir == "/tmp/restate-output"
    assert request.research_info.model_extra == {
        "temp_dir": "/tmp",
        "max_search_plan": "1",
        "vector_store_name": None,
        "vector_store_id": None,
    }


def test_the_shipped_body_file_is_the_seed_body_with_a_nonce_in_the_prompt():
    body = json.loads((ROOT / "targets" / "agents_writer" / "body.json").read_text())
    assert "{{nonce}}" in body["prompt"]  # the tap attributes model requests by it
    assert parse_request(body).research_info.output_dir.startswith("/tmp/")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "must be a JSON object, not list"),
        ({"research_info": {"output_dir": "/tmp"}}, "prompt: Field required"),
        ({"prompt": "", "research_info": {"output_dir": "/tmp"}}, "prompt: String should have at least 1 character"),
        ({"prompt": "p", "research_info": {}}, "research_info.output_dir: Field required"),
        ({"prompt": "p", "research_info": {"output_dir": 3}}, "research_info.output_dir: Input should be a valid"),
        ({"prompt": "p", "research_info": {"output_dir": "/tmp"}, "faults": {}}, "faults: Extra inputs"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(body, says):
    with pytest.raises(BadRequest) as raised:
        parse_request(body)
    assert says in str(raised.value)


# -- the tool fault -------------------------------------------------------------------------------------


def test_the_first_n_executions_fail_then_every_one_succeeds():
    fault = ToolFault(2)
    outcomes = []
    for _ in range(4):
        try:
            fault.check()
            outcomes.append("ok")
        except SaveReportFault as exc:
            outcomes.append(str(exc))
    assert outcomes == [
        "save_report failed on purpose (1 of AGENTS_WRITER_TOOL_FAIL_FIRST)",
        "save_report failed on purpose (2 of AGENTS_WRITER_TOOL_FAIL_FIRST)",
        "ok",
        "ok",
    ]
    assert (fault.left, fault.failed) == (0, 2)


def test_the_fault_is_retryable_for_restate():
    import restate

    assert not issubclass(SaveReportFault, restate.TerminalError)  # Restate retries anything else
    with pytest.raises(ValueError):
        ToolFault(-1)


def test_no_fault_by_default():
    fault = ToolFault(0)
    fault.check()
    assert fault.failed == 0


# -- the llama.cpp rewrite ------------------------------------------------------------------------------

FORCED = {
    "model": "smollm2",
    "messages": [{"role": "user", "content": "x"}],
    "tools": [{"type": "function", "function": {"name": "save_report"}}],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "final_output", "schema": {}}},
}


def test_a_forced_tool_call_is_prefilled_stopped_and_loses_its_response_format():
    rewritten = rewrite_for_forced_tool_call(FORCED, "tool_call")
    assert rewritten is not None
    assert "response_format" not in rewritten
    assert rewritten["messages"] == [*FORCED["messages"], {"role": "assistant", "content": "<tool_call>\n"}]
    assert rewritten["stop"] == ["</tool_call>"]
    assert {k: v for k, v in rewritten.items() if k not in ("messages", "stop")} == {
        k: v for k, v in FORCED.items() if k not in ("messages", "response_format")
    }
    assert FORCED["messages"] == [{"role": "user", "content": "x"}]  # the SDK's body is not mutated


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        (FORCED, ""),  # no tag configured: the team's requests as the SDK builds them
        ({**FORCED, "tool_choice": None}, "tool_call"),  # the answer after the tool ran
        ({k: v for k, v in FORCED.items() if k != "tool_choice"}, "tool_call"),
        ({**FORCED, "tool_choice": "auto"}, "tool_call"),
        ({**FORCED, "messages": "not a list"}, "tool_call"),
    ],
)
def test_everything_else_goes_out_unchanged(body, tag):
    assert rewrite_for_forced_tool_call(body, tag) is None


def _sent_through(transport_body: bytes, path: str = "/v1/chat/completions") -> dict:
    seen: dict = {}

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen["body"] = request.content
        seen["length"] = request.headers.get("content-length")
        return httpx2.Response(200, json={})

    async def go() -> None:
        transport = ModelTransport("tool_call", inner=httpx2.MockTransport(upstream))
        async with httpx2.AsyncClient(transport=transport) as client:
            await client.post(
                "http://127.0.0.1:8091" + path, content=transport_body, headers={"content-type": "application/json"}
            )

    import asyncio

    asyncio.run(go())
    return seen


def test_the_transport_sends_the_rewritten_body_with_its_own_length():
    seen = _sent_through(json.dumps(FORCED).encode())
    sent = json.loads(seen["body"])
    assert sent == rewrite_for_forced_tool_call(FORCED, "tool_call")
    assert int(seen["length"]) == len(seen["body"])


def test_the_transport_passes_other_requests_byte_for_byte():
    raw = json.dumps({**FORCED, "tool_choice": "auto"}).encode()
    assert _sent_through(raw)["body"] == raw
    assert _sent_through(b"not json")["body"] == b"not json"
    assert _sent_through(json.dumps(FORCED).encode(), "/v1/embeddings")["body"] == json.dumps(FORCED).encode()


# -- the local model's chat template --------------------------------------------------------------------


def _local_model(tmp_path, template: str | None) -> LocalModel:
    base = drill_config.load(ROOT / "configs" / "local.yaml")
    local = base.local_model.model_copy(update={"chat_template": None if template is None else Path(template)})
    config = base.model_copy(update={"local_model": local})
    state = StateDir(tmp_path / "state")
    return LocalModel(config, state, ProcessTable(state.root / "procs"))


def test_the_chat_template_reaches_llama_cpp_and_its_content_the_stamp(tmp_path):
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    model = _local_model(tmp_path, str(template))
    argv = model.argv(Path("/m.gguf"))
    assert argv[argv.index("--chat-template-file") + 1] == str(template)
    before = model.config_stamp(Path("/m.gguf")).digest
    template.write_text("{{ messages }} edited")
    assert model.config_stamp(Path("/m.gguf")).digest != before  # an edited template restarts the model


def test_no_chat_template_by_default_and_a_missing_one_is_named(tmp_path):
    assert "--chat-template-file" not in _local_model(tmp_path, None).argv(Path("/m.gguf"))
    with pytest.raises(DrillError, match=r"local_model\.chat_template: no file .*missing\.jinja"):
        _local_model(tmp_path, str(tmp_path / "missing.jinja")).argv(Path("/m.gguf"))


def test_the_agents_writer_config_serves_the_template_and_describes_the_target():
    config = drill_config.load(ROOT / "configs" / "agents-writer.yaml")
    assert config.local_model.chat_template is not None
    assert (ROOT / config.local_model.chat_template).is_file()
    target = config.target
    assert target is not None
    assert (target.service, target.handler, target.port) == ("WriterAgentRestate", "run", 9081)
    assert target.tool_fault is not None and target.tool_fault.step == "save_report"
    assert target.env["AGENTS_WRITER_FORCE_TOOL_TAG"] == "tool_call"
    assert target.command is not None and target.command[-1].endswith("targets/agents_writer/service.py")


def test_local_llm_script_takes_a_chat_template_file():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import local_llm
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    args = local_llm.parse_args(["--model", "m.gguf", "--chat-template-file", "t.jinja"])
    assert args.chat_template_file == Path("t.jinja")
    assert local_llm.parse_args(["--model", "m.gguf"]).chat_template_file is None


def test_model_requests_beyond_the_limit_wait_before_being_sent():
    import asyncio

    class Slow(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.in_flight = self.most = 0

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            try:
                await asyncio.sleep(0.02)  # the model answering; the test measures overlap, not time
                return httpx2.Response(200, json={"ok": True})
            finally:
                self.in_flight -= 1

    async def go(limit: int) -> int:
        inner = Slow()
        async with httpx2.AsyncClient(transport=ModelTransport(max_concurrency=limit, inner=inner)) as client:
            answers = await asyncio.gather(*(client.get("http://127.0.0.1:8091/v1/models") for _ in range(7)))
        assert all(a.json() == {"ok": True} for a in answers)
        return inner.most

    assert asyncio.run(go(2)) == 2
    assert asyncio.run(go(0)) == 7  # no limit: all at once


def test_the_limit_and_the_inactivity_timeout_are_read():
    s = settings.load({"OPENAI_MAX_CONCURRENCY": "4", "AGENTS_WRITER_INACTIVITY_TIMEOUT_S": "600"})
    assert (s.max_concurrency, s.inactivity_timeout_s) == (4, 600.0)
    assert (settings.load({}).max_concurrency, settings.load({}).inactivity_timeout_s) == (0, None)

import json
import os
import stat
from pathlib import Path

import pytest
from restate import TerminalError

from drillkit.howto import howto_body
from drillkit.state import StateDir
from writer_service import agent, models
from writer_service.agent import WriterRuntime, validate
from writer_service.config import WriterConfig
from writer_service.models import InvalidRequest, parse_request


def runtime(tmp_path: Path, roots: list[str] | None = None, faults: dict[str, object] | None = None) -> WriterRuntime:
    cfg = WriterConfig.from_mapping(
        {
            "writer_model": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
            "paths": {"allowed_roots": roots or ["/tmp", str(tmp_path)]},
            "faults": faults or {},
        }
    )
    return WriterRuntime(config=cfg, llm=None, ledger=None)  # type: ignore[arg-type]


def test_howto_body_is_accepted_as_is(tmp_path):
    request, output_dir, faults = validate(runtime(tmp_path), howto_body())
    assert request.prompt == "Ecris un court rapport de test."
    assert request.research_info.max_search_plan == 1  # the HOW-TO sends "1"
    assert request.research_info.vector_store_id is None
    assert output_dir == Path(os.path.realpath("/tmp/restate-output"))
    assert faults.tool_error.fail_first == 0


@pytest.mark.parametrize("value", [1, "1", " 2 "])
def test_max_search_plan_int_or_numeric_string(value):
    body = howto_body()
    body["research_info"]["max_search_plan"] = value
    assert parse_request(body).research_info.max_search_plan == int(str(value).strip())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("prompt"), "prompt"),
        (lambda b: b.update(prompt=""), "prompt"),
        (lambda b: b.update(prompt=42), "prompt"),
        (lambda b: b["research_info"].update(max_search_plan="one"), "research_info.max_search_plan"),
        (lambda b: b["research_info"].update(max_search_plan=True), "research_info.max_search_plan"),
        (lambda b: b["research_info"].update(search_results="x"), "research_info.search_results"),
        (lambda b: b["research_info"].pop("output_dir"), "research_info.output_dir"),
        (lambda b: b.update(surprise=1), "surprise"),
    ],
)
def test_bad_bodies_name_the_field(mutate, field):
    body = howto_body()
    mutate(body)
    with pytest.raises(InvalidRequest, match=field.replace(".", r"\.")):
        parse_request(body)


def test_invalid_request_is_a_terminal_400(tmp_path):
    body = howto_body()
    body.pop("prompt")
    with pytest.raises(TerminalError) as err:
        validate(runtime(tmp_path), body)
    assert err.value.status_code == 400
    assert "prompt" in err.value.message


@pytest.mark.parametrize("field", ["output_dir", "temp_dir"])
def test_paths_outside_allowed_roots_are_refused(tmp_path, field):
    body = howto_body()
    body["research_info"][field] = "/etc"
    with pytest.raises(TerminalError) as err:
        validate(runtime(tmp_path, roots=["/tmp"]), body)
    assert err.value.status_code == 400
    assert f"research_info.{field}" in err.value.message and "/etc" in err.value.message


def test_dotdot_and_symlink_escapes_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to("/etc")
    rt = runtime(tmp_path, roots=[str(root)])
    for sneaky in (f"{root}/../outside", f"{root}/link/sub"):
        body = howto_body()
        body["research_info"].update(output_dir=sneaky, temp_dir=str(root))
        with pytest.raises(TerminalError, match="outside the allowed roots"):
            validate(rt, body)
    body = howto_body()
    body["research_info"].update(output_dir=f"{root}/a/../b", temp_dir=str(root))
    assert validate(rt, body)[1] == root / "b"


def test_faults_come_from_the_config_only(tmp_path):
    config_faults = {"tool_error": {"fail_first": 2}, "crash": {"during_step": "summary"}}
    _, _, faults = validate(runtime(tmp_path, faults=config_faults), howto_body())
    assert faults.tool_error.fail_first == 2 and faults.crash.during_step == "summary"
    _, _, faults = validate(runtime(tmp_path), howto_body())
    assert faults.tool_error.fail_first == 0 and faults.crash.during_step is None


def expect_400(rt: WriterRuntime, body: object, *needles: str) -> str:
    with pytest.raises(TerminalError) as err:
        validate(rt, body)
    assert err.value.status_code == 400, err.value.message
    for needle in needles:
        assert needle in err.value.message, err.value.message
    err.value.message.encode("utf-8")  # whatever the body held, the message itself is sendable
    return err.value.message


def with_info(**changes: object) -> dict[str, object]:
    body = howto_body()
    body["research_info"].update(changes)  # type: ignore[attr-defined]
    return body


@pytest.mark.parametrize("field", ["output_dir", "temp_dir"])
@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("/tmp/a\x00b", "NUL"),
        ("", "absolute"),
        ("reports", "absolute"),
        ("./reports", "absolute"),
        ("../tmp", "absolute"),
        ("/tmp/\ud800", "unicode"),  # pydantic refuses lone surrogates itself
        ("/tmp/a\nb", "control character"),
        ("/tmp/a\x1bb", "control character"),
        ("/tmp/\u202ereversed", "bidirectional"),
        ("/tmp/" + "a" * 300, "255 bytes"),
        ("/tmp/" + "a/" * 600, "1024"),
    ],
)
def test_bad_paths_are_terminal_400s_naming_the_field(tmp_path, field, value, needle):
    expect_400(runtime(tmp_path), with_info(**{field: value}), f"research_info.{field}", needle)


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ({**howto_body(), "prompt": "x" * 20_001}, ("prompt", "20000")),
        ({**howto_body(), "prompt": "a\x00b"}, ("prompt", "NUL")),
        ({**howto_body(), "prompt": "a\udc80b"}, ("prompt", "surrogate")),  # pydantic lets \udc80-\udcff through
        ({**howto_body(), "prompt": "a\x07b"}, ("prompt", "control")),
        (with_info(search_results=["r"] * 51), ("search_results", "50")),
        (with_info(search_results=["r" * 10_001]), ("search_results.0", "10000")),
        (with_info(search_results=["ok", "\x00"]), ("search_results.1", "NUL")),
        (with_info(max_search_plan=21), ("max_search_plan", "20")),
        (with_info(max_search_plan=-1), ("max_search_plan",)),
        (with_info(max_search_plan="9" * 5000), ("max_search_plan",)),
        (with_info(max_search_plan="²"), ("max_search_plan",)),
        (with_info(max_search_plan=10**400), ("max_search_plan",)),
        (with_info(vector_store_name="v" * 257), ("vector_store_name",)),
        ([howto_body()], ("body", "array")),
        (None, ("body", "null")),
        ("text", ("body", "string")),
        ({"\ud800" * 500: 1, **howto_body()}, ("body", "unicode")),
        ({"x" * 500: 1, **howto_body()}, ("'xxx", "...", "Extra inputs")),
    ],
)
def test_bad_values_are_terminal_400s(tmp_path, body, needles):
    message = expect_400(runtime(tmp_path), body, *needles)
    assert len(message) < 2000


def test_tabs_and_newlines_in_the_prompt_are_fine(tmp_path):
    body = howto_body("Line one\n\tLine two\r\n")
    assert validate(runtime(tmp_path), body)[0].prompt.startswith("Line one")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{", "not valid JSON"),
        (b"{'prompt': 1}", "not valid JSON"),
        (b'{"prompt": "\xff\xfe"}', "not valid UTF-8"),
        (b"\xc3\x28", "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
        (b'{"prompt": 1' + b"0" * 5000 + b"}", "JSON"),
        (b"x" * 1_000_001, "bytes"),
        (b"null", "null"),
    ],
)
def test_raw_bodies_that_are_not_json_objects_are_400s(tmp_path, raw, needle):
    expect_400(runtime(tmp_path), raw, "body", needle)


def test_raw_body_of_the_howto_is_accepted(tmp_path):
    request, _, _ = validate(runtime(tmp_path), json.dumps(howto_body()).encode())
    assert request.research_info.max_search_plan == 1


def test_realpath_errors_never_escape_validation(tmp_path, monkeypatch):
    # Whatever a check raises, validation answers a terminal 400 naming the field, never an exception
    # that Restate would retry (a NUL byte once made realpath raise ValueError forever).
    def boom(_path: str) -> str:
        raise ValueError("embedded null byte")

    monkeypatch.setattr("writer_service.report_files.os.path.realpath", boom)
    expect_400(runtime(tmp_path), howto_body(), "research_info.temp_dir", "ValueError")


def test_any_unexpected_exception_in_validation_is_a_400(tmp_path, monkeypatch):
    def boom(_body: object) -> None:
        raise RuntimeError("surprise")

    monkeypatch.setattr(agent, "parse_request", boom)
    expect_400(runtime(tmp_path), howto_body(), "body", "RuntimeError")


@pytest.mark.parametrize(
    "faults",
    [
        {"crash": {"during_step": "outline"}},
        {"tool_error": {"fail_first": 2}},
        {},
        None,
        "crash",
        {"allow_request_faults": True},
    ],
)
@pytest.mark.parametrize("raw", [False, True])
def test_a_body_carrying_faults_is_a_terminal_400(tmp_path, faults, raw):
    # Request fault injection is gone: `faults` is an unknown field like any other, refused before any
    # step (whatever the config's own faults), and the message says where faults come from now.
    body = {**howto_body(), "faults": faults}
    rt = runtime(tmp_path, faults={"tool_error": {"fail_first": 1}})
    message = expect_400(rt, json.dumps(body).encode() if raw else body, "faults", "Extra inputs are not permitted")
    assert "request fault injection was removed" in message and "config" in message
    assert "403" not in message and "forbidden" not in message


def test_the_removal_hint_is_only_for_faults(tmp_path):
    message = expect_400(runtime(tmp_path), {**howto_body(), "fault": {}}, "fault", "Extra inputs")
    assert "removed" not in message


def test_state_dir_is_private_and_holds_no_fault_key(tmp_path):
    state = StateDir(tmp_path / "state")
    state.prepare()
    assert stat.S_IMODE(state.root.stat().st_mode) == 0o700
    assert not hasattr(state, "fault_key") and not hasattr(state, "fault_key_file")
    assert list(state.root.iterdir()) == []


@pytest.mark.parametrize("prompt", [" ", "\n\t  \r\n", "\t"])
def test_a_blank_prompt_is_refused(tmp_path, prompt):
    body = howto_body()
    body["prompt"] = prompt
    with pytest.raises(TerminalError, match=r"prompt: Value error, is blank") as err:
        validate(runtime(tmp_path), body)
    assert err.value.status_code == 400


def sized_runtime(tmp_path: Path, context_tokens: int | None, max_tokens: int = 96) -> WriterRuntime:
    model: dict[str, object] = {"base_url": "http://127.0.0.1:1/v1", "model": "m", "max_tokens": max_tokens}
    if context_tokens is not None:
        model["context_tokens"] = context_tokens
    cfg = WriterConfig.from_mapping(
        {"writer_model": model, "paths": {"allowed_roots": ["/tmp", str(tmp_path)]}, "local_model": {"enabled": False}}
    )
    return WriterRuntime(config=cfg, llm=None, ledger=None)  # type: ignore[arg-type]


def test_the_context_rule_at_its_boundary(tmp_path):
    # Rule: ceil((system prompt + prompt + search results) / 3) + 64 + 2 x max_tokens <= context_tokens.
    rt = sized_runtime(tmp_path, context_tokens=1000, max_tokens=100)
    room_tokens = 1000 - 64 - 200
    fits = room_tokens * models.CHARS_PER_TOKEN - len(agent.SYSTEM_PROMPT)
    body = howto_body()
    body["prompt"] = "p" * (fits - 30)
    body["research_info"]["search_results"] = ["r" * 10, "s" * 20]
    validate(rt, body)  # exactly at the limit
    body["research_info"]["search_results"] = ["r" * 10, "s" * 21]  # one character more
    with pytest.raises(TerminalError, match=r"more than the model's context of 1000 tokens") as err:
        validate(rt, body)
    assert err.value.status_code == 400
    assert f"at most about {fits} characters fit" in err.value.message


def test_a_20000_character_prompt_is_refused_against_a_2048_token_context(tmp_path):
    body = howto_body()
    body["prompt"] = "word " * 4000
    with pytest.raises(TerminalError, match=r"20000 characters, about \d+ tokens"):
        validate(sized_runtime(tmp_path, context_tokens=2048), body)


def test_an_unknown_context_is_not_checked(tmp_path):
    body = howto_body()
    body["prompt"] = "word " * 4000
    request, _, _ = validate(sized_runtime(tmp_path, context_tokens=None), body)  # the prompt refused above passes
    assert request.prompt == body["prompt"]


def test_output_dir_naming_the_project_through_proc_self_cwd_is_refused(tmp_path, monkeypatch):
    # The project cloned under an allowed root (/tmp): /proc/self/cwd resolves to the writer's working
    # directory, the project itself.
    project = tmp_path / "clone"
    (project / ".drill").mkdir(parents=True)
    monkeypatch.chdir(project)
    body = howto_body()
    for requested in ("/proc/self/cwd", str(project / ".drill"), str(project / "reports"), str(tmp_path)):
        body["research_info"]["output_dir"] = requested
        rt = runtime(tmp_path, roots=["/proc", "/tmp", str(tmp_path)])
        with pytest.raises(TerminalError, match=r"the writer's project or state") as err:
            validate(rt, body)
        assert err.value.status_code == 400


def test_output_dir_that_is_an_existing_file_is_refused_up_front(tmp_path):
    (tmp_path / "file").write_text("x")
    body = howto_body()
    body["research_info"]["output_dir"] = str(tmp_path / "file")
    with pytest.raises(TerminalError, match=r"is an existing file, not a directory") as err:
        validate(runtime(tmp_path), body)
    assert err.value.status_code == 400


def test_the_writers_own_project_is_never_an_output_dir(tmp_path):
    body = howto_body()
    body["research_info"]["output_dir"] = str(agent.PROJECT_ROOT / "reports")
    with pytest.raises(TerminalError, match=r"project or state"):
        validate(runtime(tmp_path, roots=["/", str(tmp_path)]), body)

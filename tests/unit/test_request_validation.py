import os
from pathlib import Path

import pytest
from restate import TerminalError

from drillkit.howto import howto_body
from writer_service.agent import WriterRuntime, validate
from writer_service.config import WriterConfig
from writer_service.models import InvalidRequest, parse_request


def runtime(tmp_path: Path, allow_faults: bool = True, roots: list[str] | None = None) -> WriterRuntime:
    cfg = WriterConfig.from_mapping(
        {
            "writer_model": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
            "paths": {"allowed_roots": roots or ["/tmp", str(tmp_path)]},
            "faults": {"allow_request_faults": allow_faults},
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


def test_request_faults_only_when_the_config_allows(tmp_path):
    body = howto_body(faults={"tool_error": {"fail_first": 2}})
    assert validate(runtime(tmp_path), body)[2].tool_error.fail_first == 2
    with pytest.raises(TerminalError) as err:
        validate(runtime(tmp_path, allow_faults=False), body)
    assert err.value.status_code == 400 and "allow_request_faults" in err.value.message

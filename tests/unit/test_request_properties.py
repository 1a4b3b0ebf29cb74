"""Property: whatever a client sends, the request parser answers a WriterRequest or the terminal 400,
never any other exception (an exception escaping the handler would be retried by Restate forever)."""

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from restate import TerminalError

from drillkit.howto import howto_body
from writer_service.agent import WriterRuntime, validate
from writer_service.config import WriterConfig
from writer_service.models import InvalidRequest, WriterRequest, parse_body, parse_request

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Cf"]))
    | st.sampled_from(["1", " 2 ", "/tmp", "/tmp/x", "", ".", "..", "/tmp/\x00", "²", "/etc"])
)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
# Bodies that look like the HOW-TO's, with any value anywhere: they get past the first checks.
research_info = st.fixed_dictionaries(
    {},
    optional={
        "temp_dir": json_like,
        "output_dir": json_like,
        "max_search_plan": json_like,
        "vector_store_name": json_like,
        "vector_store_id": json_like,
        "search_results": json_like | st.lists(st.text(), max_size=60),
    },
)
near_valid = st.fixed_dictionaries(
    {},
    optional={"prompt": json_like, "research_info": research_info | json_like, "faults": json_like},
)
bodies = json_like | near_valid


def check(parse: Any, value: Any) -> None:
    try:
        result = parse(value)
    except InvalidRequest as exc:
        assert isinstance(exc, TerminalError) and exc.status_code == 400
        exc.message.encode("utf-8")  # sendable as is
        assert len(exc.message) < 20_000
    else:
        assert isinstance(result, WriterRequest)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_parse_request_answers_a_request_or_the_terminal_400(value):
    check(parse_request, value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | bodies.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")))
def test_parse_body_answers_a_request_or_the_terminal_400(raw):
    check(parse_body, raw)


RUNTIME = WriterRuntime(
    config=WriterConfig.from_mapping(
        {
            "writer_model": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
            "faults": {"tool_error": {"fail_first": 3}},
        }
    ),
    llm=None,  # type: ignore[arg-type]
    ledger=None,  # type: ignore[arg-type]
)


def test_the_howto_body_is_a_request_the_writer_accepts():
    # Not `check`: it also accepts a 400, and the HOW-TO's body (what every drill sends) must never get one.
    body = howto_body()
    raw = json.dumps(body).encode()
    parsed = parse_body(raw)  # an InvalidRequest here fails the test with the writer's own message
    assert parsed.prompt == body["prompt"]
    assert parsed.research_info.output_dir == body["research_info"]["output_dir"]
    request, output_dir, faults = validate(RUNTIME, raw)  # what the handler does with the bytes it receives
    assert request == parsed
    assert output_dir == Path(body["research_info"]["output_dir"]).resolve()
    assert faults == RUNTIME.config.faults  # the config's faults: the body asks for none


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_validate_ends_in_a_request_or_a_terminal_400(value):
    try:
        request, output_dir, faults = validate(RUNTIME, value)
    except TerminalError as exc:
        assert exc.status_code == 400
        exc.message.encode("utf-8")
    else:
        assert isinstance(request, WriterRequest)
        assert output_dir.is_absolute() and output_dir.is_relative_to(Path("/tmp").resolve())
        # No body can ask for faults: a request that passes carries none, and gets the config's.
        assert not (isinstance(value, dict) and "faults" in value)
        assert faults == RUNTIME.config.faults

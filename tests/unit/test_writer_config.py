from pathlib import Path

import pytest

from drillkit import config as drill_config
from drillkit.errors import ConfigError as DrillConfigError
from drillkit.errors import DrillError
from writer_service.config import ConfigError, WriterConfig

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_local_config_is_valid_for_writer_and_runtime():
    writer = WriterConfig.load(ROOT / "configs/local.yaml")
    assert writer.writer_model.base_url == "http://127.0.0.1:8091/v1"
    assert writer.pipeline.sections == 3
    assert writer.faults.allow_request_faults is True
    full = drill_config.load(ROOT / "configs/local.yaml")
    assert full.runtime.restate_version == "1.7.12"
    assert full.runtime.server_env["RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS"] == "1000"
    assert full.local_model.enabled


def test_env_var_selects_the_file(monkeypatch, tmp_path):
    path = write(tmp_path, "writer_model: {base_url: 'http://127.0.0.1:1/v1', model: m}\n")
    monkeypatch.setenv("RESTATE_WRITER_CONFIG", str(path))
    assert WriterConfig.load().writer_model.model == "m"


def test_remote_config_reads_url_and_key_from_env(monkeypatch):
    monkeypatch.setenv("WRITER_LLM_BASE_URL", "http://dgx.internal:8000/v1")
    monkeypatch.setenv("WRITER_LLM_API_KEY", "secret")
    monkeypatch.delenv("WRITER_LLM_MODEL", raising=False)
    cfg = drill_config.load(ROOT / "configs/tests/config-dgx-remote.yaml")
    assert cfg.writer_model.base_url == "http://dgx.internal:8000/v1"
    assert cfg.writer_model.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.writer_model.api_key() == "secret"
    assert cfg.faults.allow_request_faults is False
    assert cfg.local_model.enabled is False
    assert cfg.runtime.use_http11 is True


def test_remote_config_without_url_names_file_field_and_variable(monkeypatch):
    monkeypatch.delenv("WRITER_LLM_BASE_URL", raising=False)
    with pytest.raises(ConfigError) as err:
        WriterConfig.load(ROOT / "configs/tests/config-dgx-remote.yaml")
    message = str(err.value)
    assert "config-dgx-remote.yaml" in message
    assert "writer_model.base_url" in message
    assert "WRITER_LLM_BASE_URL" in message


def test_missing_api_key_is_reported_by_name(monkeypatch, tmp_path):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    path = write(tmp_path, "writer_model: {base_url: 'http://x:1/v1', model: m, api_key_env: NOPE_KEY}\n")
    with pytest.raises(ConfigError, match="NOPE_KEY"):
        WriterConfig.load(path).writer_model.api_key()


@pytest.mark.parametrize(
    ("yaml_text", "field", "value"),
    [
        ("writer_model: {base_url: 'http://x/v1', model: m, timeout_s: soon}\n", "writer_model.timeout_s", "'soon'"),
        ("writer_model: {base_url: 'ftp://x', model: m}\n", "writer_model.base_url", "'ftp://x'"),
        ("writer_model: {base_url: 'http://x', model: m}\npipeline: {sections: 0}\n", "pipeline.sections", "0"),
        (
            "writer_model: {base_url: 'http://x', model: m}\nfaults: {crash: {during_step: sectoin:1}}\n",
            "faults.crash.during_step",
            "'sectoin:1'",
        ),
        (
            "writer_model: {base_url: 'http://x', model: m}\nservice: {port: 99999}\n",
            "service.port",
            "99999",
        ),
    ],
)
def test_bad_values_name_file_field_and_value(tmp_path, yaml_text, field, value):
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        WriterConfig.load(path)
    message = str(err.value)
    assert str(path) in message
    assert f"field {field}" in message
    assert f"(got {value})" in message


def test_unknown_and_missing_fields(tmp_path):
    path = write(tmp_path, "writer_model: {base_url: 'http://x', modle: m}\n")
    with pytest.raises(ConfigError) as err:
        WriterConfig.load(path)
    assert "field writer_model.modle: unknown field" in str(err.value)
    assert "field writer_model.model: Field required" in str(err.value)


def test_runtime_section_is_validated_by_drillkit_only(tmp_path):
    path = write(tmp_path, "writer_model: {base_url: 'http://x', model: m}\nruntime: {backend: podman}\n")
    assert WriterConfig.load(path).writer_model.model == "m"  # the writer ignores runtime sections
    with pytest.raises(DrillConfigError) as err:  # drillkit's own error family, same message
        drill_config.load(path)
    assert "field runtime.backend" in str(err.value)
    assert "'podman'" in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        WriterConfig.load(tmp_path / "absent.yaml")
    path = write(tmp_path, "writer_model: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        WriterConfig.load(path)


def test_extends_deep_merges_a_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "writer_model: {base_url: 'http://x/v1', model: m, timeout_s: 5}\n"
        "runtime: {backend: native, use_http11: true}\n"
    )
    child = write(tmp_path, "extends: base.yaml\nruntime: {backend: docker}\nwriter_model: {timeout_s: 9}\n")
    cfg = drill_config.load(child)
    assert cfg.runtime.backend == "docker" and cfg.runtime.use_http11 is True
    assert cfg.writer_model.timeout_s == 9 and cfg.writer_model.model == "m"


def test_extends_loop_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        WriterConfig.load(tmp_path / "a.yaml")


def test_docker_config_is_local_with_the_docker_backend():
    cfg = drill_config.load(ROOT / "configs/docker.yaml")
    assert cfg.runtime.backend == "docker"
    assert cfg.runtime.image() == "docker.restate.dev/restatedev/restate:1.7.12"
    assert cfg.writer_model == drill_config.load(ROOT / "configs/local.yaml").writer_model


def test_drillkit_config_errors_belong_to_its_one_exception_family(tmp_path):
    assert issubclass(DrillConfigError, DrillError)
    with pytest.raises(DrillConfigError, match="config file not found"):
        drill_config.load(tmp_path / "missing.yaml")


def test_config_file_choice_and_project_relative_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("RESTATE_WRITER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # `inv` run from elsewhere still finds the project's configs
    assert drill_config.config_file() == ROOT / "configs/local.yaml"
    assert drill_config.config_file(None, "configs/docker.yaml") == ROOT / "configs/docker.yaml"
    monkeypatch.setenv("RESTATE_WRITER_CONFIG", "configs/tests/config-dgx-remote.yaml")
    assert drill_config.config_file(None, "configs/docker.yaml").name == "config-dgx-remote.yaml"
    assert drill_config.config_file("/abs/x.yaml") == Path("/abs/x.yaml")
    cfg = drill_config.load(ROOT / "configs/local.yaml")
    assert cfg.state_root() == ROOT / ".drill" and cfg.ledger_file() == ROOT / ".drill/ledger.jsonl"


MODEL = "writer_model: {base_url: 'http://127.0.0.1:1/v1', model: m}\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", 4),  # no local_model section: the local model is enabled by default, with 4 slots
        ("local_model: {parallel: 2}\n", 2),
        ("local_model: {enabled: true}\n", 4),
        ("local_model: {enabled: false, parallel: 2}\n", 8),  # a remote endpoint: the documented default
    ],
)
def test_max_concurrency_defaults_to_what_the_endpoint_serves(tmp_path, extra, expected):
    path = write(tmp_path, MODEL + extra)
    assert WriterConfig.load(path).writer_model.max_concurrency == expected
    assert drill_config.load(path).writer_model.max_concurrency == expected


def test_max_concurrency_set_in_the_file_wins(tmp_path):
    path = write(tmp_path, "writer_model: {base_url: 'http://x:1/v1', model: m, max_concurrency: 3}\n")
    assert WriterConfig.load(path).writer_model.max_concurrency == 3


def test_shipped_configs_resolve_max_concurrency(monkeypatch):
    assert WriterConfig.load(ROOT / "configs/local.yaml").writer_model.max_concurrency == 4
    monkeypatch.setenv("WRITER_LLM_BASE_URL", "http://dgx.internal:8000/v1")
    assert WriterConfig.load(ROOT / "configs/tests/config-dgx-remote.yaml").writer_model.max_concurrency == 8


def test_local_model_context_is_per_slot(tmp_path):
    cfg = drill_config.load(ROOT / "configs/local.yaml")
    assert (cfg.local_model.ctx_per_slot, cfg.local_model.parallel, cfg.local_model.ctx_total) == (2048, 4, 8192)
    with pytest.raises(DrillConfigError, match=r"local_model\.ctx_size: unknown field"):
        drill_config.load(write(tmp_path, MODEL + "local_model: {ctx_size: 4096}\n"))


def test_the_writer_script_answers_help_and_bad_input_without_serving(tmp_path):
    """`--help` documents the flags and the environment; a bad flag or config exits 2 and binds nothing."""
    import subprocess
    import sys

    from drillkit.config import PROJECT_ROOT

    script = [sys.executable, str(PROJECT_ROOT / "scripts" / "restate_writer_service.py")]
    shown = subprocess.run([*script, "--help"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0
    for documented in ("--config", "RESTATE_WRITER_CONFIG", "RESTATE_WRITER_HOST", "RESTATE_WRITER_FAULT_KEY_FILE"):
        assert documented in shown.stdout
    bogus = subprocess.run([*script, "--bogus"], capture_output=True, text=True, timeout=30)
    assert bogus.returncode == 2 and "unrecognized arguments: --bogus" in bogus.stderr
    missing = tmp_path / "missing.yaml"
    bad = subprocess.run([*script, "--config", str(missing)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and f"{missing}: config file not found" in bad.stderr


TIMED_MODEL = "writer_model: {base_url: 'http://127.0.0.1:1/v1', model: m, timeout_s: 60%s}\n"


def test_the_slot_wait_is_derived_from_restates_timeouts_and_the_model_timeout():
    cfg = WriterConfig.load(ROOT / "configs/local.yaml")
    assert (cfg.service.inactivity_timeout_s, cfg.service.abort_timeout_s) == (60, 600)  # Restate's defaults
    assert cfg.writer_model.max_slot_wait_s == 60 + 600 - 60 - 1
    scaled = WriterConfig.from_mapping(
        {
            "writer_model": {"base_url": "http://x/v1", "model": "m", "timeout_s": 4},
            "service": {"inactivity_timeout_s": 2, "abort_timeout_s": 4},
        }
    )
    assert scaled.writer_model.max_slot_wait_s == 1


def test_a_slot_wait_restate_would_abort_is_refused_naming_the_fields(tmp_path):
    path = write(tmp_path, TIMED_MODEL % ", max_slot_wait_s: 600")
    with pytest.raises(ConfigError) as err:
        WriterConfig.load(path)
    message = str(err.value)
    assert str(path) in message and "max_slot_wait_s (600 s)" in message and "inactivity_timeout_s" in message


def test_a_model_timeout_longer_than_restate_allows_a_step_is_refused(tmp_path):
    path = write(tmp_path, TIMED_MODEL % "" + "service: {inactivity_timeout_s: 2, abort_timeout_s: 4}\n")
    with pytest.raises(ConfigError, match=r"timeout_s \(60 s\) leaves no time to wait for a model slot"):
        WriterConfig.load(path)


def test_the_context_is_the_local_models_slot_unless_set(tmp_path):
    assert WriterConfig.load(ROOT / "configs/local.yaml").writer_model.context_tokens == 2048
    small = write(tmp_path, TIMED_MODEL % "" + "local_model: {ctx_per_slot: 512}\n")
    assert WriterConfig.load(small).writer_model.context_tokens == 512
    remote = write(tmp_path, TIMED_MODEL % "" + "local_model: {enabled: false}\n")
    assert WriterConfig.load(remote).writer_model.context_tokens is None  # unknown: not checked
    stated = write(tmp_path, TIMED_MODEL % ", context_tokens: 8192" + "local_model: {enabled: false}\n")
    assert WriterConfig.load(stated).writer_model.context_tokens == 8192


def test_the_runtime_state_dir_is_protected_from_reports():
    cfg = WriterConfig.load(ROOT / "configs/local.yaml")
    assert Path(".drill") in cfg.paths.protected

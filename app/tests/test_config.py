"""The [gridengine] configuration: merging and validation."""

from __future__ import annotations

import pytest

from pywps_gridengine.config import ConfigError, Resources, load, load_settings


def test_defaults_without_section(make_env):
    env = make_env()
    settings = load_settings()
    assert settings.launcher == str(env.root / "bin" / "pywps-gridengine-launcher")
    assert settings.launcher_config == str(env.cfg)
    assert settings.native_specification("hello") == ""
    assert settings.heartbeat_interval < settings.heartbeat_timeout


def test_site_defaults_process_declaration_and_operator_override(make_env):
    make_env(processing_extra="drmaa_native_specification = -P demo", extra="""
[gridengine]
queue = wps.q
h_rt = 01:00:00
h_vmem = 1G
parallel_environment = smp

[gridengine:sleep]
h_rt = 00:30:00
slots = 4
""")
    settings = load_settings()
    declared = {"h_rt": "08:00:00", "h_vmem": "512M"}
    # process declaration beats site default, operator override beats both
    assert settings.resources_for("sleep", declared) == Resources(
        queue="wps.q", h_rt="00:30:00", h_vmem="512M", slots=4, parallel_environment="smp")
    assert settings.native_specification("sleep", declared) == \
        "-P demo -q wps.q -l h_rt=00:30:00,h_vmem=512M -pe smp 4"
    # another process: only the site defaults and its own declaration
    assert settings.native_specification("hello", {"h_vmem": "256M"}) == \
        "-P demo -q wps.q -l h_rt=01:00:00,h_vmem=256M"


def test_one_slot_needs_no_parallel_environment():
    assert Resources(slots=1, h_rt="60").native_specification() == "-l h_rt=60"


def test_extra_options_are_appended(make_env):
    make_env(extra="[gridengine]\nextra = -p -100 -m n\n")
    assert load_settings().native_specification("hello") == "-p -100 -m n"


@pytest.mark.parametrize(("section", "text", "message"), [
    ("gridengine", "h_rt = one hour", "h_rt = 'one hour' is not a run time"),
    ("gridengine", "h_vmem = 2 GB", "h_vmem = '2 GB' is not a memory size"),
    ("gridengine", "slots = two", "slots = 'two' is not a whole number"),
    ("gridengine", "slots = 0", "must be at least 1"),
    ("gridengine", "queue = all.q; rm -rf /", "is not a Grid Engine name"),
    ("gridengine", "hvmem = 2G", "unknown key(s) hvmem"),
    ("gridengine", "heartbeat_interval = 40", "heartbeat_timeout (30) must be longer"),
    ("gridengine", "gone_grace = -1", "must be positive"),
    ("gridengine", "job_env = NOEQUALS", "is not NAME=VALUE"),
    ("gridengine", "launcher = bin/launcher", "must be an absolute path"),
    ("gridengine:sleep", "slots = 8", "[gridengine:sleep]: slots = 8 needs a parallel_environment"),
    ("gridengine:sleep", "h_rt = 1h", "[gridengine:sleep]: h_rt = '1h'"),
])
def test_bad_values_give_a_clear_error(make_env, section, text, message):
    make_env(extra=f"[{section}]\n{text}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    assert message in str(excinfo.value)


def test_bad_process_declaration_is_reported(make_env):
    make_env()
    with pytest.raises(ConfigError, match="process 'x' gridengine_resources: h_vmem"):
        load_settings().resources_for("x", {"h_vmem": "lots"})


def test_environment_variables_do_not_leak_into_the_section(make_env, monkeypatch):
    # PyWPS's parser uses the environment as DEFAULT section; H_RT must not become a setting.
    monkeypatch.setenv("H_RT", "garbage")
    monkeypatch.setenv("QUEUE", "garbage")
    make_env(extra="[gridengine]\nh_vmem = 1G\n")
    assert load_settings().native_specification("hello") == "-l h_vmem=1G"


def test_job_env_and_pass_env(make_env):
    make_env(extra='[gridengine]\npass_env = TZ HTTP_PROXY\njob_env = OMP_NUM_THREADS=1 GREETING="a b"\n')
    settings = load_settings()
    assert settings.pass_env == ("TZ", "HTTP_PROXY")
    assert settings.job_env == {"OMP_NUM_THREADS": "1", "GREETING": "a b"}


def test_app_refuses_to_start_with_bad_gridengine_section(make_env):
    from pywps_gridengine.wsgi import create_service

    env = make_env(extra="[gridengine:sleep]\nh_vmem = much\n")
    with pytest.raises(ConfigError, match=r"\[gridengine:sleep\]"):
        create_service(load(str(env.cfg)))


def test_bad_section_ignored_outside_scheduler_mode(make_env):
    from pywps_gridengine.wsgi import create_service

    env = make_env(mode="default", extra="[gridengine:sleep]\nh_vmem = much\n")
    assert "sleep" in create_service(load(str(env.cfg))).processes

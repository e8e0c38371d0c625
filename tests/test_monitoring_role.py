"""The monitoring role's pieces that need no host: the duration filter, and its
checks of bad thresholds, which stop the role before it changes anything."""

import importlib.util
import json

import pytest
from ansible.errors import AnsibleFilterError
from conftest import ROOT, ansible

SPEC = importlib.util.spec_from_file_location(
    "monitoring_durations", ROOT / "roles" / "monitoring" / "filter_plugins" / "monitoring_durations.py")
plugin = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(plugin)
seconds = plugin.FilterModule().filters()["monitoring_seconds"]


@pytest.mark.parametrize(("text", "expected"), [
    ("26h", 93600), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2w", 1209600), ("1y", 31536000),
    ("500ms", 0.5), ("1d2h", 93600), ("0s", 0),
])
def test_durations_in_seconds(text, expected):
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "26 hours", "1.5h", "-1m", "5m5m", "1m1h", "5M", "1h 30m"])
def test_what_is_not_a_prometheus_duration(text):
    with pytest.raises(AnsibleFilterError, match="not a Prometheus duration"):
        seconds(text)


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: monitoring
        tasks_from: assert.yml
"""


@pytest.mark.parametrize(("variable", "value"), [
    ("monitoring_alert_backup_age", "26 hours"),
    ("monitoring_alert_exec_host_down_for", "2"),
    ("monitoring_scrape_interval", "fast"),
    ("monitoring_alert_shared_tree_free_ratio", "1.5"),
    ("monitoring_node_exporter_listen", "9100"),
])
def test_a_bad_threshold_is_refused_by_name(tmp_path, variable, value):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    run = ansible("ansible-playbook", "-i", "localhost,", str(play), "-e", json.dumps({variable: value}), check=False)
    assert run.returncode != 0
    assert variable in run.stdout + run.stderr
    assert value in run.stdout + run.stderr


def test_the_defaults_pass(tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    run = ansible("ansible-playbook", "-i", "localhost,", str(play), check=False)
    assert run.returncode == 0, run.stdout + run.stderr

"""The sge_qmaster role's sge_qconf module, run as Ansible runs it (a module
process reading its arguments from a JSON file) against the stand-in qconf in
tests/fixtures, which keeps the cell's objects in a file and records its calls."""

import copy
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

MODULE = ROOT / "roles" / "sge_qmaster" / "library" / "sge_qconf.py"
FIXTURES = ROOT / "tests" / "fixtures"
# The options that change the cell (everything else only reads).
MUTATING = {
    "-Aq", "-Mq", "-dq", "-Ap", "-Mp", "-dp", "-Ahgrp", "-Mhgrp", "-dhgrp", "-Ae", "-Me", "-de",
    "-Aconf", "-Mconf", "-dconf", "-Msconf", "-Mc", "-ah", "-dh", "-as", "-ds", "-ke", "-dattr", "-purge",
    "-Au", "-Mu", "-dul",
}

QUEUE = {
    "qname": "all.q", "hostlist": "@allhosts", "shell": "/bin/bash", "h_rt": "INFINITY",
    "slots": "1,[exec1=2],[exec2=2],[exec3=4]", "pe_list": "smp",
}
CELL = {
    "conf": {"global": {"min_uid": "1000", "min_gid": "1000", "execd_spool_dir": "/var/spool/gridengine/execd"},
             "exec2": {"mailer": "/usr/bin/mail"}},
    "sconf": {"schedule_interval": "0:0:15", "flush_submit_sec": "0", "algorithm": "default"},
    "queue": {"all.q": QUEUE},
    "pe": {"smp": {"pe_name": "smp", "slots": "99999", "allocation_rule": "$pe_slots"}},
    "hostgroup": {"@allhosts": {"group_name": "@allhosts", "hostlist": "exec1 exec2 exec3"},
                  "@big": {"group_name": "@big", "hostlist": "exec3"}},
    "exechost": {h: {"hostname": h, "complex_values": "h_vmem=1000M", "load_values": "load_avg=0.1",
                     "processors": "2"} for h in ("exec1", "exec2", "exec3")},
    "complex": {
        "h_vmem": dict(zip(["name", "shortcut", "type", "relop", "requestable", "consumable", "default", "urgency"],
                           ["h_vmem", "h_vmem", "MEMORY", "<=", "YES", "NO", "0", "0"])),
        "arch": dict(zip(["name", "shortcut", "type", "relop", "requestable", "consumable", "default", "urgency"],
                         ["arch", "a", "RESTRING", "==", "YES", "NO", "NONE", "0"])),
    },
    "userset": {
        "arusers": {"name": "arusers", "type": "ACL", "fshare": "0", "oticket": "0", "entries": "NONE"},
        "wps_users": {"name": "wps_users", "type": "ACL", "fshare": "0", "oticket": "0", "entries": "wps,alice"},
    },
    "adminhost": ["qmaster", "exec3"],
    "submithost": ["web", "exec1", "exec3"],
    "execd_shut_down": [],
}


class Cell:
    """The stand-in's state and call log in a temporary directory."""

    def __init__(self, path):
        self.state_file = path / "state.json"
        self.log_file = path / "calls.jsonl"
        self.args_file = path / "args.json"
        self.state_file.write_text(json.dumps(copy.deepcopy(CELL)))
        self.log_file.write_text("")
        self.env = {
            **os.environ,
            "PATH": f"{FIXTURES}{os.pathsep}{os.environ['PATH']}",
            "QCONF_STATE": str(self.state_file),
            "QCONF_LOG": str(self.log_file),
        }

    @property
    def state(self):
        return json.loads(self.state_file.read_text())

    def calls(self):
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def changes(self):
        """The mutating qconf calls since the last run."""
        return [c["args"] for c in self.calls() if c["args"][0] in MUTATING]

    def run_qconf(self, *args):
        """The stand-in's own answer, as the module reads it."""
        proc = subprocess.run(["qconf", *args], capture_output=True, text=True, env=self.env, check=True)
        return proc.stdout

    def run(self, check=False, diff=True, env=None, **params):
        """Run the module as Ansible does; return its result."""
        self.log_file.write_text("")
        args = {**params, "_ansible_check_mode": check, "_ansible_diff": diff}
        self.args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        proc = subprocess.run(
            [sys.executable, str(MODULE), str(self.args_file)],
            capture_output=True, text=True, env={**self.env, **(env or {})}, check=False,
        )
        result = json.loads(proc.stdout)
        assert (proc.returncode != 0) == bool(result.get("failed")), proc.stdout + proc.stderr
        return result


@pytest.fixture
def cell(tmp_path):
    return Cell(tmp_path)


# One change per kind, from the converged cell above: (module arguments, check of the new state).
CHANGES = {
    "conf": ({"kind": "conf", "attributes": {"min_uid": 2000}},
             lambda s: s["conf"]["global"]["min_uid"] == "2000"),
    "conf host-local": ({"kind": "conf", "name": "exec1", "attributes": {"mailer": "/bin/true"}},
                        lambda s: s["conf"]["exec1"] == {"mailer": "/bin/true"}),
    "sconf": ({"kind": "sconf", "attributes": {"schedule_interval": "0:0:1", "flush_submit_sec": 1}},
              lambda s: s["sconf"]["schedule_interval"] == "0:0:1" and s["sconf"]["algorithm"] == "default"),
    "new queue": ({"kind": "queue", "name": "short.q", "attributes": {"hostlist": "@allhosts", "h_rt": "0:10:0"}},
                  lambda s: s["queue"]["short.q"]["qname"] == "short.q"),
    "queue": ({"kind": "queue", "name": "all.q", "attributes": {"h_rt": "1:0:0"}},
              lambda s: s["queue"]["all.q"]["h_rt"] == "1:0:0" and s["queue"]["all.q"]["shell"] == "/bin/bash"),
    "pe": ({"kind": "pe", "name": "mpi", "attributes": {"slots": 8, "allocation_rule": "$fill_up"}},
           lambda s: s["pe"]["mpi"]["allocation_rule"] == "$fill_up"),
    "hostgroup": ({"kind": "hostgroup", "name": "@allhosts", "attributes": {"hostlist": "exec1 exec2 exec3 exec4"}},
                  lambda s: s["hostgroup"]["@allhosts"]["hostlist"].split()[-1] == "exec4"),
    "exechost": ({"kind": "exechost", "name": "exec4", "attributes": {"complex_values": "h_vmem=2000M"}},
                 lambda s: s["exechost"]["exec4"]["complex_values"] == "h_vmem=2000M"),
    "new userset": ({"kind": "userset", "name": "ops",
                     "attributes": {"type": "ACL", "fshare": 0, "oticket": 0, "entries": ["wps"]}},
                    lambda s: s["userset"]["ops"] == {"name": "ops", "type": "ACL", "fshare": "0", "oticket": "0",
                                                      "entries": "wps"}),
    "userset": ({"kind": "userset", "name": "wps_users", "attributes": {"type": "ACL", "entries": ["wps", "bob"]}},
                lambda s: s["userset"]["wps_users"]["entries"] == "wps,bob"
                and s["userset"]["wps_users"]["fshare"] == "0"),
    "complex": ({"kind": "complex", "attributes": {"h_vmem": {"consumable": "YES", "default": "2G"}}},
                lambda s: s["complex"]["h_vmem"]["consumable"] == "YES" and s["complex"]["h_vmem"]["default"] == "2G"),
    "adminhost": ({"kind": "adminhost", "hosts": ["qmaster", "exec1"]},
                  lambda s: s["adminhost"] == ["qmaster", "exec3", "exec1"]),
    "submithost": ({"kind": "submithost", "hosts": ["web", "exec2", "exec4"]},
                   lambda s: s["submithost"] == ["web", "exec1", "exec3", "exec2", "exec4"]),
}

REMOVALS = {
    "conf host-local": ({"kind": "conf", "name": "exec2"}, "-dconf",
                        lambda s: "exec2" not in s["conf"]),
    "queue": ({"kind": "queue", "name": "all.q"}, "-dq", lambda s: s["queue"] == {}),
    "pe": ({"kind": "pe", "name": "smp"}, "-dp", lambda s: s["pe"] == {}),
    "hostgroup": ({"kind": "hostgroup", "name": "@big"}, "-dhgrp", lambda s: list(s["hostgroup"]) == ["@allhosts"]),
    "exechost": ({"kind": "exechost", "name": "exec2"}, "-de", lambda s: "exec2" not in s["exechost"]),
    "userset": ({"kind": "userset", "name": "wps_users"}, "-dul", lambda s: list(s["userset"]) == ["arusers"]),
    "complex": ({"kind": "complex", "attributes": {"arch": {}}}, "-Mc", lambda s: list(s["complex"]) == ["h_vmem"]),
    "adminhost": ({"kind": "adminhost", "hosts": ["exec3", "exec9"]}, "-dh", lambda s: s["adminhost"] == ["qmaster"]),
    "submithost": ({"kind": "submithost", "hosts": ["exec1", "exec3"]}, "-ds", lambda s: s["submithost"] == ["web"]),
    "host": ({"kind": "host", "name": "exec3"}, "-de", lambda s: "exec3" not in s["exechost"]),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_change_is_applied_then_idempotent(cell, case):
    params, applied = CHANGES[case]
    first = cell.run(**params)
    assert first["changed"] is True, first
    assert cell.changes(), "no mutating qconf call"
    assert applied(cell.state), cell.state
    second = cell.run(**params)
    assert second["changed"] is False, second
    assert cell.changes() == []


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_check_mode_reports_the_change_and_makes_no_mutating_call(cell, case):
    params, _ = CHANGES[case]
    result = cell.run(check=True, **params)
    assert result["changed"] is True, result
    assert cell.changes() == []
    assert cell.state == CELL


@pytest.mark.parametrize("case", sorted(REMOVALS))
def test_state_absent_removes_then_is_idempotent(cell, case):
    params, option, removed = REMOVALS[case]
    check = cell.run(check=True, state="absent", **params)
    assert check["changed"] is True, check
    assert cell.changes() == [] and cell.state == CELL
    first = cell.run(state="absent", **params)
    assert first["changed"] is True, first
    assert option in [c[0] for c in cell.changes()]
    assert removed(cell.state), cell.state
    second = cell.run(state="absent", **params)
    assert second["changed"] is False, second
    assert cell.changes() == []


def test_adminhost_absent_removes_and_never_adds(cell):
    result = cell.run(kind="adminhost", hosts=["exec1"], state="absent")
    assert result["changed"] is False
    assert cell.state["adminhost"] == CELL["adminhost"]


def test_host_absent_unregisters_the_host_everywhere(cell):
    result = cell.run(kind="host", name="exec3", state="absent")
    assert result["changed"] is True
    assert result["removed_from"] == [
        "hostgroup @allhosts", "hostgroup @big", "queue all.q", "exechost", "submithost", "adminhost"]
    assert cell.changes() == [
        ["-ke", "exec3"],
        ["-dattr", "hostgroup", "hostlist", "exec3", "@allhosts"],
        ["-dattr", "hostgroup", "hostlist", "exec3", "@big"],
        ["-purge", "queue", "*", "all.q@exec3"],
        ["-de", "exec3"],
        ["-ds", "exec3"],
        ["-dh", "exec3"],
    ]
    state = cell.state
    assert state["hostgroup"]["@allhosts"]["hostlist"] == "exec1 exec2"
    assert state["hostgroup"]["@big"]["hostlist"] == "NONE"
    assert state["queue"]["all.q"]["slots"] == "1,[exec1=2],[exec2=2]"
    assert state["execd_shut_down"] == ["exec3"]


def test_host_absent_for_a_host_only_in_a_list(cell):
    """A host that is no exec host: its execd is left alone, the lists still lose it."""
    result = cell.run(kind="host", name="web", state="absent")
    assert result["changed"] is True
    assert result["removed_from"] == ["submithost"]
    assert cell.changes() == [["-ds", "web"]]


def test_host_absent_on_an_empty_cell(cell):
    """qconf's 'no ... defined' answers (exit 1) read as empty lists."""
    cell.state_file.write_text(json.dumps({**CELL, "queue": {}, "hostgroup": {}, "exechost": {},
                                           "submithost": []}))
    result = cell.run(kind="host", name="exec3", state="absent")
    assert result["changed"] is True
    assert result["removed_from"] == ["adminhost"]


def test_diff_shows_before_and_after(cell):
    result = cell.run(kind="queue", name="all.q", attributes={"h_rt": "1:0:0"})
    assert result["differs"] == ["h_rt"]
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert before.splitlines()[0].split() == ["qname", "all.q"]
    assert "h_rt" in before and "INFINITY" in before
    assert [line.split() for line in after.splitlines() if line.startswith("h_rt")] == [["h_rt", "1:0:0"]]
    assert result["attributes"]["slots"] == QUEUE["slots"]


def test_diff_of_a_host_list_and_of_a_removal(cell):
    added = cell.run(kind="submithost", hosts=["exec2"], check=True)
    assert added["diff"] == {"before": "exec1\nexec3\nweb\n", "after": "exec1\nexec2\nexec3\nweb\n"}
    removed = cell.run(kind="pe", name="smp", state="absent", check=True)
    assert removed["diff"]["after"] == ""
    assert "allocation_rule" in removed["diff"]["before"]


def test_no_diff_without_diff_mode(cell):
    result = cell.run(kind="queue", name="all.q", attributes={"h_rt": "1:0:0"}, diff=False)
    assert "diff" not in result


def test_values_compare_as_qconf_means_them(cell):
    """Case, blanks after commas and qconf's line wrapping make no difference."""
    result = cell.run(kind="queue", name="all.q",
                      attributes={"slots": "1, [exec1=2], [exec2=2], [exec3=4]", "shell": "/BIN/BASH"})
    assert result["changed"] is False
    assert cell.changes() == []


def test_exechost_ignores_what_the_host_reports(cell):
    result = cell.run(kind="exechost", name="exec1", attributes={"complex_values": "h_vmem=1000M"})
    assert result["changed"] is False
    assert "load_values" not in result["attributes"]


def test_userset_entries_compare_as_a_set_of_names(cell):
    """The order of an access list's members makes no change; a member's case does (user names are)."""
    same = cell.run(kind="userset", name="wps_users", attributes={"type": "ACL", "entries": ["alice", "wps"]})
    assert same["changed"] is False, same
    assert cell.changes() == []
    spaced = cell.run(kind="userset", name="wps_users", attributes={"entries": "alice wps"})
    assert spaced["changed"] is False, spaced
    case = cell.run(kind="userset", name="wps_users", attributes={"entries": ["Alice", "wps"]})
    assert case["changed"] is True and case["differs"] == ["entries"], case
    assert cell.state["userset"]["wps_users"]["entries"] == "Alice,wps"


def test_userset_emptied_and_a_long_one_read_back_across_qconf_line_wrapping(cell):
    """An empty list is NONE; a list qconf wraps over lines (continuation backslashes) reads back as the same set."""
    emptied = cell.run(kind="userset", name="wps_users", attributes={"entries": []})
    assert emptied["changed"] is True
    assert cell.state["userset"]["wps_users"]["entries"] == "NONE"
    many = [f"user{n:02d}" for n in range(12)]
    cell.run(kind="userset", name="wps_users", attributes={"entries": many})
    assert len(cell.run_qconf("-su", "wps_users").splitlines()) > 5, "the stand-in did not wrap the list"
    again = cell.run(kind="userset", name="wps_users", attributes={"entries": list(reversed(many))})
    assert again["changed"] is False, again
    assert cell.changes() == []


def test_a_new_userset_without_every_attribute_fails_with_qconfs_message(cell):
    """qconf -Au wants the whole list (fshare, oticket too); the module says what qconf said, nothing is made."""
    result = cell.run(kind="userset", name="ops", attributes={"type": "ACL", "entries": ["wps"]})
    assert result["failed"] is True
    assert result["msg"].startswith("qconf -Au")
    assert 'required attribute "fshare" is missing' in result["msg"]
    assert "ops" not in cell.state["userset"]


def test_userset_is_deleted_with_dul_never_du(cell):
    """qconf -du takes users out of a list; deleting the list itself is -dul."""
    cell.run(kind="userset", name="wps_users", state="absent")
    assert cell.changes() == [["-dul", "wps_users"]]


def test_root_and_cell_come_from_the_environment(cell):
    cell.run(kind="sconf", attributes={}, env={"SGE_ROOT": "/opt/sge", "SGE_CELL": "site"})
    assert {(c["SGE_ROOT"], c["SGE_CELL"]) for c in cell.calls()} == {("/opt/sge", "site")}
    cell.run(kind="sconf", attributes={}, sge_root="/srv/sge", sge_cell="other", env={"SGE_ROOT": "/opt/sge"})
    assert {(c["SGE_ROOT"], c["SGE_CELL"]) for c in cell.calls()} == {("/srv/sge", "other")}


def test_root_and_cell_default_to_the_debian_packages(cell):
    env = {k: v for k, v in cell.env.items() if k not in ("SGE_ROOT", "SGE_CELL")}
    cell.env = env
    cell.run(kind="sconf", attributes={})
    assert {(c["SGE_ROOT"], c["SGE_CELL"]) for c in cell.calls()} == {("/var/lib/gridengine", "default")}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kind": "sconf", "state": "absent"}, "state=absent is not supported for kind=sconf"),
        ({"kind": "conf", "state": "absent"}, "state=absent is not supported for kind=conf name=global"),
        ({"kind": "conf", "name": "global", "state": "absent"}, "state=absent is not supported for kind=conf"),
        ({"kind": "host", "name": "exec1"}, "state=present is not supported for kind=host"),
        ({"kind": "queue", "attributes": {"h_rt": 1}}, "kind is queue but all of the following are missing: name"),
        ({"kind": "host", "state": "absent"}, "kind is host but all of the following are missing: name"),
        ({"kind": "userset", "attributes": {"entries": ["wps"]}},
         "kind is userset but all of the following are missing: name"),
        ({"kind": "adminhost"}, "kind is adminhost but all of the following are missing: hosts"),
        ({"kind": "complex"}, "kind is complex but all of the following are missing: attributes"),
        ({"kind": "submithost", "hosts": ["a"], "name": "a"}, "parameters are mutually exclusive: name|hosts"),
        ({"kind": "queue", "name": "q", "hosts": ["a"]}, "parameters are mutually exclusive: name|hosts"),
        ({"kind": "pe", "name": "smp", "state": "gone"}, "value of state must be one of: present, absent"),
        ({"kind": "rqs", "name": "x"}, "value of kind must be one of"),
        ({"kind": "adminhost", "hosts": ["a"], "attributes": {"x": 1}},
         "parameters are mutually exclusive: attributes|hosts"),
        ({"kind": "sconf", "name": "x", "attributes": {}}, "name is not supported for kind=sconf"),
        ({"kind": "complex", "attributes": {"new": {"type": "INT"}}}, "complex new: columns"),
    ],
)
def test_wrong_arguments_fail_naming_the_argument_before_any_change(cell, params, message):
    result = cell.run(**params)
    assert result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert cell.changes() == []


@pytest.mark.parametrize(
    ("option", "params"),
    [
        ("-Mq", {"kind": "queue", "name": "all.q", "attributes": {"h_rt": "1:0:0"}}),
        ("-Aq", {"kind": "queue", "name": "new.q", "attributes": {}}),
        ("-Au", {"kind": "userset", "name": "ops",
                 "attributes": {"type": "ACL", "fshare": 0, "oticket": 0, "entries": ["wps"]}}),
        ("-Mu", {"kind": "userset", "name": "wps_users", "attributes": {"entries": ["wps"]}}),
        ("-Msconf", {"kind": "sconf", "attributes": {"schedule_interval": "0:0:1"}}),
        ("-dp", {"kind": "pe", "name": "smp", "state": "absent"}),
        ("-as", {"kind": "submithost", "hosts": ["exec2"]}),
        ("-sq", {"kind": "queue", "name": "all.q", "attributes": {}}),
        ("-sql", {"kind": "queue", "name": "all.q", "attributes": {}}),
        ("-dattr", {"kind": "host", "name": "exec3", "state": "absent"}),
    ],
)
def test_qconf_exit_status_fails_the_task_with_its_message(cell, option, params):
    result = cell.run(env={"QCONF_FAIL": option}, **params)
    assert result["failed"] is True
    assert result["rc"] == 1
    assert result["msg"].startswith(f"qconf {option}")
    assert f"error: {option} refused by the stand-in" in result["msg"]


def test_a_gone_execd_does_not_stop_the_unregistration(cell):
    result = cell.run(kind="host", name="exec3", state="absent", env={"QCONF_FAIL": "-ke"})
    assert result["changed"] is True
    assert "exec3" not in cell.state["exechost"]

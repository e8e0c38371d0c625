#!/usr/bin/python3
"""Grid Engine configuration objects as data, applied with qconf only when they differ."""

import os
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: sge_qconf
short_description: Manage a Grid Engine configuration object with qconf
description:
  - Reads the live object (C(qconf -s*)), lays the wanted attributes over it,
    and writes it back (C(qconf -A*)/C(-M*) from a rendered file) only when an
    attribute differs. Attributes not given keep their live value.
  - Kinds C(adminhost) and C(submithost) take a list of host names instead and
    add the missing ones.
options:
  kind:
    description: The kind of object.
    type: str
    required: true
    choices: [conf, sconf, queue, pe, hostgroup, exechost, complex, adminhost, submithost]
  name:
    description: Object name (queue, pe, hostgroup, exec host; C(global) or a host for conf).
    type: str
  attributes:
    description:
      - Wanted attributes. For C(complex), a dict of complex name to a dict of
        its columns (shortcut, type, relop, requestable, consumable, default, urgency).
    type: dict
    default: {}
  hosts:
    description: Host names for C(adminhost) and C(submithost).
    type: list
    elements: str
    default: []
  state:
    description: C(absent) deletes a queue, pe, hostgroup or exec host.
    type: str
    choices: [present, absent]
    default: present
  sge_root:
    description: SGE_ROOT.
    type: path
    default: /var/lib/gridengine
  sge_cell:
    description: SGE_CELL.
    type: str
    default: default
"""

RETURN = r"""
attributes:
  description: The object's attributes after the change (as compared).
  type: dict
  returned: success
"""

# kind: (show, add, modify, delete, name key)
COMMANDS = {
    "conf": ("-sconf", None, "-Mconf", None, None),
    "sconf": ("-ssconf", None, "-Msconf", None, None),
    "queue": ("-sq", "-Aq", "-Mq", "-dq", "qname"),
    "pe": ("-sp", "-Ap", "-Mp", "-dp", "pe_name"),
    "hostgroup": ("-shgrp", "-Ahgrp", "-Mhgrp", "-dhgrp", "group_name"),
    "exechost": ("-se", "-Ae", "-Me", "-de", "hostname"),
}
# Attributes the exec host reports itself: never written back.
EXECHOST_READ_ONLY = {"load_values", "processors", "reschedule_unknown_list"}
COMPLEX_COLUMNS = ["name", "shortcut", "type", "relop", "requestable", "consumable", "default", "urgency"]


def to_text(value):
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (list, tuple)):
        return ",".join(to_text(v) for v in value) if value else "NONE"
    return str(value)


def normalize(value):
    """Compare values the way qconf means them: no layout, no case, no blanks after commas."""
    text = re.sub(r"\\\s*\n\s*", " ", to_text(value))
    text = re.sub(r"\s*,\s*", ",", text.strip())
    text = re.sub(r"\s+", " ", text)
    return text.lower()


def parse(text, kind):
    """Parse qconf's `key value` output, joining continuation lines."""
    text = re.sub(r"\\\s*\n\s*", " ", text)
    attributes = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.strip().partition(" ")
        attributes[key] = value.strip()
    return attributes


def parse_complex(text):
    rows = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        rows[fields[0]] = dict(zip(COMPLEX_COLUMNS, fields))
    return rows


def render(attributes, kind, name_key=None):
    keys = list(attributes)
    if name_key and name_key in keys:  # qconf wants the name first
        keys.remove(name_key)
        keys.insert(0, name_key)
    width = max(len(k) for k in keys) + 1
    return "".join(f"{k.ljust(width)}{to_text(attributes[k])}\n" for k in keys)


def render_complex(rows):
    lines = ["#" + " ".join(COMPLEX_COLUMNS)]
    for name in sorted(rows):
        lines.append(" ".join(to_text(rows[name][c]) for c in COMPLEX_COLUMNS))
    return "\n".join(lines) + "\n"


class Qconf:
    def __init__(self, module):
        self.module = module
        self.env = {"SGE_ROOT": module.params["sge_root"], "SGE_CELL": module.params["sge_cell"]}
        self.qconf = module.get_bin_path("qconf", required=True)

    def run(self, *args, check=True):
        rc, out, err = self.module.run_command([self.qconf, *args], environ_update=self.env)
        if check and rc != 0:
            self.module.fail_json(msg=f"qconf {' '.join(args)} failed: {(err or out).strip()}", rc=rc)
        return rc, out, err

    def apply_file(self, option, content, file_name="object"):
        tmpdir = tempfile.mkdtemp(prefix="sge_qconf.")
        try:
            path = os.path.join(tmpdir, file_name)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.chmod(tmpdir, 0o755)
            os.chmod(path, 0o644)
            rc, out, err = self.run(option, path, check=False)
            # qconf answers some errors with rc 0: look at the words as well.
            if rc != 0 or re.search(r"error|denied|invalid|unknown attribute", (out + err), re.IGNORECASE):
                self.module.fail_json(msg=f"qconf {option} failed: {(err or out).strip()}", rc=rc, content=content)
        finally:
            shutil.rmtree(tmpdir)


def manage_host_list(module, qconf, kind):
    show, add = {"adminhost": ("-sh", "-ah"), "submithost": ("-ss", "-as")}[kind]
    rc, out, _ = qconf.run(show, check=False)
    live = set(out.split()) if rc == 0 else set()
    missing = [h for h in module.params["hosts"] if h not in live]
    if missing and not module.check_mode:
        qconf.run(add, ",".join(missing))
    module.exit_json(changed=bool(missing), added=missing,
                     diff={"before": "\n".join(sorted(live)) + "\n",
                           "after": "\n".join(sorted(live | set(missing))) + "\n"})


def manage_complex(module, qconf):
    _, out, _ = qconf.run("-sc")
    live = parse_complex(out)
    wanted = {name: dict(row) for name, row in live.items()}
    for name, columns in module.params["attributes"].items():
        row = dict(wanted.get(name, {"name": name}))
        row.update({k: to_text(v) for k, v in columns.items()})
        missing = [c for c in COMPLEX_COLUMNS if c not in row]
        if missing:
            module.fail_json(msg=f"complex {name}: columns {', '.join(missing)} are needed for a new complex")
        wanted[name] = row
    changed = any(
        normalize(wanted[n][c]) != normalize(live.get(n, {}).get(c, "")) for n in wanted for c in COMPLEX_COLUMNS
    )
    if changed and not module.check_mode:
        qconf.apply_file("-Mc", render_complex(wanted))
    module.exit_json(changed=changed, attributes=wanted,
                     diff={"before": render_complex(live), "after": render_complex(wanted)})


def main():
    module = AnsibleModule(
        argument_spec={
            "kind": {"type": "str", "required": True, "choices": list(COMMANDS) + ["complex", "adminhost", "submithost"]},
            "name": {"type": "str"},
            "attributes": {"type": "dict", "default": {}},
            "hosts": {"type": "list", "elements": "str", "default": []},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "sge_root": {"type": "path", "default": "/var/lib/gridengine"},
            "sge_cell": {"type": "str", "default": "default"},
        },
        supports_check_mode=True,
    )
    kind = module.params["kind"]
    qconf = Qconf(module)
    if kind in ("adminhost", "submithost"):
        manage_host_list(module, qconf, kind)
    if kind == "complex":
        manage_complex(module, qconf)

    show, add, modify, delete, name_key = COMMANDS[kind]
    name = module.params["name"] or ("global" if kind == "conf" else None)
    if name_key and not name:
        module.fail_json(msg=f"name is required for kind {kind}")
    args = [show, name] if kind in ("conf", "queue", "pe", "hostgroup", "exechost") else [show]
    rc, out, _ = qconf.run(*args, check=kind in ("conf", "sconf"))
    exists = rc == 0 and bool(out.strip())
    live = parse(out, kind) if exists else {}

    if module.params["state"] == "absent":
        if exists and not module.check_mode:
            qconf.run(delete, name)
        module.exit_json(changed=exists)

    wanted_attributes = {k: to_text(v) for k, v in module.params["attributes"].items()}
    if name_key:
        wanted_attributes[name_key] = name
    if kind == "exechost":
        live = {k: v for k, v in live.items() if k not in EXECHOST_READ_ONLY}
    differs = {k: v for k, v in wanted_attributes.items() if normalize(v) != normalize(live.get(k, ""))}
    changed = not exists or bool(differs)
    after = dict(live)
    after.update(wanted_attributes)
    if changed and not module.check_mode:
        if exists:
            qconf.apply_file(modify, render(after, kind, name_key), file_name=name if kind == "conf" else "object")
        else:
            qconf.apply_file(add, render(after, kind, name_key))
    module.exit_json(changed=changed, attributes=after, differs=sorted(differs),
                     diff={"before": render(live, kind, name_key) if live else "",
                           "after": render(after, kind, name_key)})


if __name__ == "__main__":
    main()

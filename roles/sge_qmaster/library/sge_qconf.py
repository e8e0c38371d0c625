#!/usr/bin/python3
"""Grid Engine configuration objects as data, applied with qconf only when they differ."""

import os
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule, env_fallback

DOCUMENTATION = r"""
---
module: sge_qconf
short_description: Manage a Grid Engine configuration object with qconf
description:
  - Reads the live object (C(qconf -s*)), lays the wanted attributes over it,
    and writes it back (C(qconf -A*)/C(-M*) from a rendered file) only when an
    attribute differs. Attributes not given keep their live value.
  - Kinds C(adminhost) and C(submithost) take a list of host names instead and
    add the missing ones (or, with I(state=absent), remove the listed ones).
  - Kind C(host) with I(state=absent) unregisters a (drained) exec host from
    the whole cluster - stops its execd (C(qconf -ke)), takes it out of every
    host group's hostlist and every queue's per-host settings, then off the
    exec, submit and admin host lists.
  - A failed qconf is detected by its exit status alone. qconf exits 0
    without doing anything in a few cases - C(-ah)/C(-as) of a host already
    listed ("already exists"), C(-dattr) or C(-purge) of a value that is not
    there ("does not exist", "not found"), C(-dconf) of a configuration that
    does not exist - and the module never provokes them - it reads the live
    state first and calls these only for a change that state calls for.
  - A listing of nothing (C(qconf -sel) with no exec host, C(-ss), C(-shgrpl),
    C(-sconfl), ...) exits 1 with a "no ... defined" message; only that
    message reads as an empty list.
options:
  kind:
    description: The kind of object.
    type: str
    required: true
    choices: [conf, sconf, queue, pe, hostgroup, exechost, userset, complex, adminhost, submithost, host]
  name:
    description:
      - Object name - queue, pe, hostgroup, exec host, userset (access list),
        or host for C(host); C(global) (the default) or a host name for C(conf).
      - Required for C(queue), C(pe), C(hostgroup), C(exechost), C(userset) and C(host).
    type: str
  attributes:
    description:
      - Wanted attributes, for every kind but C(adminhost), C(submithost) and C(host).
      - For C(userset) (access_list(5)), C(type) (C(ACL), C(DEPT) or both)
        and C(entries), a list of user names (C(@group) for a Unix group);
        entries compare as a set, so their order never makes a change.
      - For C(complex), a dict of complex name to a dict of its columns
        (shortcut, type, relop, requestable, consumable, default, urgency);
        with I(state=absent), the complexes named here are removed.
    type: dict
  hosts:
    description: Host names for C(adminhost) and C(submithost) (required for them).
    type: list
    elements: str
  state:
    description:
      - C(present) creates or updates the object; C(absent) deletes it (a
        queue, pe, hostgroup, exec host, host-local C(conf)), removes the
        listed hosts (C(adminhost), C(submithost)), the named complexes
        (C(complex)), or unregisters the host (C(host)).
      - C(sconf) and the C(global) conf cannot be absent; C(host) can only be
        absent. The module fails naming the argument when asked otherwise.
    type: str
    choices: [present, absent]
    default: present
  sge_root:
    description: SGE_ROOT; defaults to the environment's SGE_ROOT, else /var/lib/gridengine.
    type: path
    default: /var/lib/gridengine
  sge_cell:
    description: SGE_CELL; defaults to the environment's SGE_CELL, else C(default).
    type: str
    default: default
"""

EXAMPLES = r"""
- name: Set the scheduler configuration
  sge_qconf:
    kind: sconf
    attributes:
      schedule_interval: "0:0:1"

- name: Unregister a drained exec host
  sge_qconf:
    kind: host
    name: exec3
    state: absent
"""

RETURN = r"""
attributes:
  description: The object's attributes after the change (as compared).
  type: dict
  returned: success, for objects with attributes and state present
differs:
  description: Names of the attributes that differed.
  type: list
  returned: success, for objects with attributes and state present
hosts:
  description: The hosts added (state present) or removed (state absent).
  type: list
  returned: success, for kinds adminhost and submithost
removed_from:
  description: What the host was taken out of (kind host).
  type: list
  returned: success, for kind host
"""

# kind: (show, list, add, modify, delete, name key)
COMMANDS = {
    "conf": ("-sconf", "-sconfl", "-Aconf", "-Mconf", "-dconf", None),
    "sconf": ("-ssconf", None, None, "-Msconf", None, None),
    "queue": ("-sq", "-sql", "-Aq", "-Mq", "-dq", "qname"),
    "pe": ("-sp", "-spl", "-Ap", "-Mp", "-dp", "pe_name"),
    "hostgroup": ("-shgrp", "-shgrpl", "-Ahgrp", "-Mhgrp", "-dhgrp", "group_name"),
    "exechost": ("-se", "-sel", "-Ae", "-Me", "-de", "hostname"),
    # -dul deletes the userset; -du would only take users out of it.
    "userset": ("-su", "-sul", "-Au", "-Mu", "-dul", "name"),
}
# kind: (show, add, delete)
HOST_LISTS = {"adminhost": ("-sh", "-ah", "-dh"), "submithost": ("-ss", "-as", "-ds")}
KINDS = [*COMMANDS, "complex", *HOST_LISTS, "host"]
NAMED_KINDS = ["queue", "pe", "hostgroup", "exechost", "userset", "host"]
# Attributes the exec host reports itself: never written back.
EXECHOST_READ_ONLY = {"load_values", "processors", "reschedule_unknown_list"}
COMPLEX_COLUMNS = ["name", "shortcut", "type", "relop", "requestable", "consumable", "default", "urgency"]
# Attributes that are lists whose order means nothing (a userset's members):
# compared as sets, so a list given in another order than qconf keeps is no change.
UNORDERED = {"userset": {"entries"}}
# What qconf prints, exiting 1, when it lists nothing: an empty list, not an error.
EMPTY_LIST = re.compile(r"^no \S.* defined$", re.IGNORECASE)


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


def same(kind, key, wanted, live):
    """Whether a wanted value is what qconf holds; unordered lists compare as sets, keeping case (user names)."""
    if key in UNORDERED.get(kind, ()):
        return members(wanted) == members(live)
    return normalize(wanted) == normalize(live)


def members(value):
    """The names of a list value, however qconf laid it out (commas, blanks, continuation lines)."""
    text = re.sub(r"\\\s*\n\s*", " ", to_text(value))
    return set(re.split(r"[,\s]+", text.strip())) - {""}


def words(text):
    """The words of qconf's output, continuation lines joined."""
    return re.sub(r"\\\s*\n", " ", text).split()


def parse(text):
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


def render(attributes, name_key=None):
    if not attributes:
        return ""
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


def render_list(names):
    return "".join(f"{n}\n" for n in sorted(names))


class Qconf:
    """qconf with the cell's environment; every call that fails ends the module."""

    def __init__(self, module):
        self.module = module
        self.env = {"SGE_ROOT": module.params["sge_root"], "SGE_CELL": module.params["sge_cell"]}
        self.qconf = module.get_bin_path("qconf", required=True)

    def fail(self, args, rc, out, err, **extra):
        message = (err or out).strip() or f"exit status {rc}"
        self.module.fail_json(msg=f"qconf {' '.join(args)} failed: {message}", rc=rc,
                              stdout=out, stderr=err, **extra)

    def run(self, *args, **extra):
        rc, out, err = self.module.run_command([self.qconf, *args], environ_update=self.env)
        if rc != 0:
            self.fail(args, rc, out, err, **extra)
        return out

    def listing(self, *args):
        """Names qconf lists; its 'no ... defined' (exit 1) is an empty list."""
        rc, out, err = self.module.run_command([self.qconf, *args], environ_update=self.env)
        if rc != 0:
            if EMPTY_LIST.match((err or out).strip()):
                return []
            self.fail(args, rc, out, err)
        return words(out)

    def change(self, *args):
        """A mutating call: skipped in check mode."""
        if not self.module.check_mode:
            self.run(*args)

    def apply_file(self, option, content, file_name="object"):
        if self.module.check_mode:
            return
        tmpdir = tempfile.mkdtemp(prefix="sge_qconf.")
        try:
            path = os.path.join(tmpdir, file_name)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.chmod(tmpdir, 0o755)
            os.chmod(path, 0o644)
            self.run(option, path, content=content)
        finally:
            shutil.rmtree(tmpdir)


def finish(module, changed, before, after, **result):
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(changed=changed, **result)


def check_state(module):
    """Refuse a state the kind cannot take, before any qconf call."""
    kind, state, name = module.params["kind"], module.params["state"], module.params["name"]
    if kind == "sconf" and state == "absent":
        module.fail_json(msg="state=absent is not supported for kind=sconf: the scheduler configuration always exists")
    if kind == "conf" and state == "absent" and (name or "global") == "global":
        module.fail_json(msg="state=absent is not supported for kind=conf name=global: "
                             "only a host-local configuration can be deleted")
    if kind == "host" and state == "present":
        module.fail_json(msg="state=present is not supported for kind=host: register a host with "
                             "kind exechost, adminhost or submithost; kind=host only unregisters (state=absent)")
    if kind in ("adminhost", "submithost", "host") and module.params["attributes"]:
        module.fail_json(msg=f"attributes is not supported for kind={kind}")
    if kind not in ("adminhost", "submithost") and module.params["hosts"]:
        module.fail_json(msg=f"hosts is not supported for kind={kind}: only for adminhost and submithost")
    if kind in ("sconf", "complex") and name:
        module.fail_json(msg=f"name is not supported for kind={kind}: there is one {kind} object")


def manage_host_list(module, qconf, kind):
    show, add, delete = HOST_LISTS[kind]
    live = set(qconf.listing(show))
    wanted = module.params["hosts"]
    if module.params["state"] == "present":
        todo = [h for h in dict.fromkeys(wanted) if h not in live]
        after = live | set(todo)
        if todo:
            qconf.change(add, ",".join(todo))
    else:
        todo = [h for h in dict.fromkeys(wanted) if h in live]
        after = live - set(todo)
        if todo:
            qconf.change(delete, ",".join(todo))
    finish(module, bool(todo), render_list(live), render_list(after), hosts=todo)


def manage_complex(module, qconf):
    live = parse_complex(qconf.run("-sc"))
    wanted = {name: dict(row) for name, row in live.items()}
    if module.params["state"] == "absent":
        for name in module.params["attributes"] or {}:
            wanted.pop(name, None)
    else:
        for name, columns in (module.params["attributes"] or {}).items():
            row = dict(wanted.get(name, {"name": name}))
            row.update({k: to_text(v) for k, v in (columns or {}).items()})
            missing = [c for c in COMPLEX_COLUMNS if c not in row]
            if missing:
                module.fail_json(msg=f"complex {name}: columns {', '.join(missing)} are needed for a new complex")
            wanted[name] = row
    changed = set(wanted) != set(live) or any(
        normalize(wanted[n][c]) != normalize(live[n].get(c, "")) for n in wanted for c in COMPLEX_COLUMNS
    )
    if changed:
        qconf.apply_file("-Mc", render_complex(wanted))
    finish(module, changed, render_complex(live), render_complex(wanted), attributes=wanted)


def unregister_host(module, qconf):
    """Take a drained exec host out of the whole cluster."""
    host = module.params["name"]
    removed = []
    is_exechost = host in qconf.listing("-sel")
    if is_exechost and not module.check_mode:
        # The host is drained; an execd that is already gone is fine.
        module.run_command([qconf.qconf, "-ke", host], environ_update=qconf.env)
    for group in qconf.listing("-shgrpl"):
        if host in parse(qconf.run("-shgrp", group)).get("hostlist", "").split():
            qconf.change("-dattr", "hostgroup", "hostlist", host, group)
            removed.append(f"hostgroup {group}")
    for queue in qconf.listing("-sql"):
        if f"[{host}=" in re.sub(r"\s+", "", qconf.run("-sq", queue)):
            qconf.change("-purge", "queue", "*", f"{queue}@{host}")
            removed.append(f"queue {queue}")
    if is_exechost:
        qconf.change("-de", host)
        removed.append("exechost")
    for kind in ("submithost", "adminhost"):
        show, _, delete = HOST_LISTS[kind]
        if host in qconf.listing(show):
            qconf.change(delete, host)
            removed.append(kind)
    finish(module, bool(removed), render_list(removed), "", removed_from=removed)


def manage_object(module, qconf):
    kind, state = module.params["kind"], module.params["state"]
    show, listing, add, modify, delete, name_key = COMMANDS[kind]
    name = module.params["name"] or ("global" if kind == "conf" else None)
    if kind == "sconf":
        exists, live = True, parse(qconf.run(show))
    else:
        # conf global always exists; everything else is looked up in its list.
        exists = (kind == "conf" and name == "global") or name in qconf.listing(listing)
        live = parse(qconf.run(show, name)) if exists else {}
    if kind == "exechost":
        live = {k: v for k, v in live.items() if k not in EXECHOST_READ_ONLY}

    if state == "absent":
        if exists:
            qconf.change(delete, name)
        finish(module, exists, render(live, name_key), "")

    wanted = {k: to_text(v) for k, v in (module.params["attributes"] or {}).items()}
    if name_key:
        wanted[name_key] = name
    differs = {k: v for k, v in wanted.items() if not same(kind, k, v, live.get(k, ""))}
    changed = not exists or bool(differs)
    after = dict(live)
    after.update(wanted)
    if changed:
        # -Aconf/-Mconf take the configuration's name from the file's name.
        file_name = name if kind == "conf" else "object"
        qconf.apply_file(modify if exists else add, render(after, name_key), file_name=file_name)
    finish(module, changed, render(live, name_key), render(after, name_key),
           attributes=after, differs=sorted(differs))


def main():
    module = AnsibleModule(
        argument_spec={
            "kind": {"type": "str", "required": True, "choices": KINDS},
            "name": {"type": "str"},
            "attributes": {"type": "dict"},
            "hosts": {"type": "list", "elements": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "sge_root": {"type": "path", "default": "/var/lib/gridengine",
                         "fallback": (env_fallback, ["SGE_ROOT"])},
            "sge_cell": {"type": "str", "default": "default", "fallback": (env_fallback, ["SGE_CELL"])},
        },
        required_if=[
            *[("kind", kind, ["name"]) for kind in NAMED_KINDS],
            ("kind", "adminhost", ["hosts"]),
            ("kind", "submithost", ["hosts"]),
            ("kind", "complex", ["attributes"]),
        ],
        mutually_exclusive=[("name", "hosts"), ("attributes", "hosts")],
        supports_check_mode=True,
    )
    check_state(module)
    kind = module.params["kind"]
    qconf = Qconf(module)
    if kind in HOST_LISTS:
        manage_host_list(module, qconf, kind)
    elif kind == "complex":
        manage_complex(module, qconf)
    elif kind == "host":
        unregister_host(module, qconf)
    else:
        manage_object(module, qconf)


if __name__ == "__main__":
    main()

"""Roles read only their own variables: each value another role or the
cluster contract shares reaches a role as one of its own inputs, wired in
group_vars/all. Every Jinja expression in a role's tasks, handlers, vars,
defaults and templates may name the role's variables (<role>_*), its
internals (__<role>_*) and Ansible's own, nothing else."""

import pytest
import yaml
from conftest import ROOT
from jinja2 import Environment, meta
from jinja2.exceptions import TemplateSyntaxError

# Regular expressions in task files ('\s') make Jinja's string lexer warn.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())

# Names Ansible (or Jinja) provides.
ANSIBLE = {
    "ansible_check_mode",
    "ansible_facts",
    "ansible_managed",
    "ansible_play_hosts",
    "ansible_playbook_python",
    "inventory_hostname",
    "item",
    "lookup",
    "omit",
    "q",
    "query",
    "role_path",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
}
# Keys whose values are bare Jinja expressions.
CONDITIONALS = {"when", "that", "changed_when", "failed_when", "until"}



class AnyName(dict):
    """Every filter and test name is known: only variables are looked at."""

    def __contains__(self, name) -> bool:
        return True

    def __missing__(self, name):
        return lambda *args, **kwargs: None

    def get(self, name, default=None):
        return self[name]


ENV = Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
ENV.filters = AnyName(ENV.filters)
ENV.tests = AnyName(ENV.tests)


def names_in(template: str) -> set[str]:
    try:
        return set(meta.find_undeclared_variables(ENV.parse(template)))
    except TemplateSyntaxError as err:
        raise AssertionError(f"cannot parse {template!r}: {err}") from err


def expressions(node, key=None):
    """Every Jinja template in a YAML document; conditionals wrapped in {{ }}."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from expressions(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from expressions(v, key)
    elif isinstance(node, str):
        if key in CONDITIONALS:
            yield "{{ " + node + " }}"
        elif "{{" in node or "{%" in node:
            yield node


def foreign_names(role) -> dict[str, set[str]]:
    own = (f"{role.name}_", f"__{role.name}_")
    found: dict[str, set[str]] = {}
    files = [p for d in ("tasks", "handlers", "vars", "defaults") for p in sorted((role / d).glob("*.yml"))]
    for path in files:
        doc = yaml.safe_load(path.read_text())
        names = set().union(*(names_in(t) for t in expressions(doc))) if doc else set()
        bad = {n for n in names if not n.startswith(own) and n not in ANSIBLE}
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    for path in sorted((role / "templates").rglob("*.j2")):
        bad = {n for n in names_in(path.read_text()) if not n.startswith(own) and n not in ANSIBLE}
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_reads_only_its_own_variables(role):
    assert foreign_names(role) == {}

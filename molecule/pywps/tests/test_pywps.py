"""The PyWPS app installed by the pywps role, behind nginx, on one host."""

import json
import re
import xml.etree.ElementTree as ET

from pwgtest import NS, poll

WPS = "http://localhost/wps?service=WPS&version=1.0.0"


def get(host, url: str) -> tuple[int, str]:
    out = host.check_output(f"curl -sS -w '\\n%{{http_code}}' '{url}'")
    body, _, code = out.rpartition("\n")
    return int(code), body


def test_gunicorn_runs_as_the_service_user_behind_its_socket(host):
    assert host.service("pywps.socket").is_running
    assert host.service("pywps.service").is_enabled
    socket = host.file("/run/pywps/gunicorn.sock")
    assert socket.is_socket
    assert (socket.user, socket.mode) == ("www-data", 0o600)
    workers = host.process.filter(comm="gunicorn")
    assert len(workers) >= 3  # the arbiter and at least two sync workers
    assert {p.user for p in workers} == {"wps"}


def normalized(requirement: str) -> str:
    """A name==version pin with the name normalized (PEP 503): pip freeze writes prometheus_client."""
    name, _, version = requirement.strip().partition("==")
    return re.sub(r"[-_.]+", "-", name).lower() + "==" + version


def test_the_virtualenv_holds_exactly_the_pins(host):
    freeze = {normalized(line) for line in
              host.check_output("/opt/pywps/venv/bin/pip freeze --exclude pywps-gridengine").split()}
    wanted = set(
        normalized(line)
        for line in host.check_output("cat /opt/pywps/wheelhouse/*/requirements.txt").splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert freeze == wanted  # nothing missing, nothing extra
    assert "pywps==4.8.1" in freeze


def test_the_virtualenv_is_a_link_to_its_build(host):
    """One virtualenv per build (/opt/pywps/venvs/<build>), the stable path a link to it, pruned hourly."""
    link = host.file("/opt/pywps/venv")
    assert link.is_symlink
    target = host.check_output("readlink -f /opt/pywps/venv")
    assert re.fullmatch(r"/opt/pywps/venvs/[0-9a-f]{16}", target), target
    assert host.file(f"{target}/.pywps-build").content_string.strip() == target.rsplit("/", 1)[1]
    assert host.check_output("ls -1 /opt/pywps/venvs").split() == [target.rsplit("/", 1)[1]]
    # The console scripts run the build's own interpreter, not the link's: a job keeps its build.
    assert host.file("/opt/pywps/venv/bin/pywps-gridengine-launcher").content_string.startswith(f"#!{target}/bin/")
    assert host.service("pywps-prune-venvs.timer").is_enabled


def test_the_exporter_serves_the_metrics_on_its_address(host):
    assert host.service("pywps-exporter.service").is_running
    body = host.check_output("curl -sS --max-time 10 http://127.0.0.1:9641/metrics")
    assert "pywps_gridengine_exporter_leader 1.0" in body  # SQLite: one host, it leads
    assert "pywps_gridengine_database_up 1.0" in body
    assert 'pywps_gridengine_shared_tree_up{path="/srv/wps/outputs"} 1.0' in body
    # No Grid Engine in this scenario: qstat does not answer, and says so instead of failing the scrape.
    assert "pywps_gridengine_qstat_up 0.0" in body
    # It listens on the role's address only (127.0.0.1 by default), not every address.
    listening = host.check_output("ss -Htln 'sport = :9641'")
    assert "127.0.0.1:9641" in listening and "0.0.0.0:9641" not in listening and "*:9641" not in listening


def test_config_is_readable_by_the_service_user_only(host):
    cfg = host.file("/etc/pywps/pywps.cfg")
    assert (cfg.user, cfg.group, cfg.mode) == ("root", "wps", 0o640)
    assert "maxsingleinputsize = 100mb" in cfg.content_string
    # job control's defaults: no identity, the job lists off
    assert "[jobs]\nidentity_header = \noperators = \njob_list = false\n" in cfg.content_string


def test_getcapabilities_lists_the_demo_processes(host):
    code, body = get(host, f"{WPS}&request=GetCapabilities")
    assert code == 200
    ids = {e.text for e in ET.fromstring(body).iterfind(".//wps:Process/ows:Identifier", NS)}
    assert {"hello", "sleep"} <= ids


def test_hello_runs_synchronously(host):
    code, body = get(host, f"{WPS}&request=Execute&identifier=hello&datainputs=name=Friday")
    assert code == 200
    doc = ET.fromstring(body)
    assert doc.find(".//wps:ProcessSucceeded", NS) is not None
    assert "Friday" in doc.find(".//wps:LiteralData", NS).text


def test_sleep_runs_asynchronously_and_succeeds(host):
    code, body = get(host, f"{WPS}&request=Execute&identifier=sleep&datainputs=delay=0.2"
                           "&storeExecuteResponse=true&status=true")
    assert code == 200
    location = ET.fromstring(body).get("statusLocation")
    assert location.startswith("http://pw-web/wpsoutputs/")
    local = location.replace("http://pw-web/", "http://localhost/")

    def fetch() -> bytes:
        code, status = get(host, local)
        assert code == 200
        return status.encode()

    execution, seen = poll(fetch, timeout=60, interval=0.5)
    assert execution.isSucceded(), (seen, execution.response)


def test_unknown_process_is_an_exception_report_not_a_traceback(host):
    code, body = get(host, f"{WPS}&request=DescribeProcess&identifier=nosuchprocess")
    assert code == 400
    assert "ExceptionReport" in body
    assert "Traceback" not in body


def test_health_checks_the_app(host):
    code, body = get(host, "http://localhost/health")
    assert code == 200
    assert '"database": "ok"' in body


def test_the_pywps_log_is_rotated_by_logrotate(host):
    """A forced rotation really rotates the host's PyWPS log, as the service user, and PyWPS goes on logging."""
    name = host.check_output("hostname")
    log = f"/srv/wps/log/pywps-{name}.log"
    assert host.file(log).exists
    host.check_output("logrotate --force /etc/logrotate.d/pywps-gridengine")
    assert host.file(f"{log}.1").exists
    assert host.file(f"{log}.1").user == "wps"
    code, _ = get(host, f"{WPS}&request=Execute&identifier=hello&datainputs=name=Log")
    assert code == 200
    assert host.file(log).size > 0  # copytruncate: the open log goes on


def test_the_job_inspector_runs_as_the_service_user(host):
    """pywps-gridengine-jobs as an operator types it: on the PATH of sudo and of the service user's login shell."""
    wrapper = host.file("/usr/local/bin/pywps-gridengine-jobs")
    assert (wrapper.user, wrapper.mode) == ("root", 0o755)
    listed = host.run("sudo -u wps pywps-gridengine-jobs list")
    assert listed.rc == 0, listed.stderr
    assert listed.stdout.strip() and "Traceback" not in listed.stderr
    as_json = host.run("runuser -l wps -c 'pywps-gridengine-jobs list --json'")
    assert as_json.rc == 0, as_json.stderr
    assert isinstance(json.loads(as_json.stdout), list)
    # Anyone else cannot read pywps.cfg, and is told whom to run it as.
    refused = host.run("runuser -u nobody -- pywps-gridengine-jobs list")
    assert refused.rc == 2 and "as the service user" in refused.stderr and "Traceback" not in refused.stderr

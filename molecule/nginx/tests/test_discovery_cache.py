"""nginx's cache of discovery answers (GetCapabilities, DescribeProcess).

The stand-in upstream (upstream.py) says in each answer how many requests
for that method and path reached it (``seen``): an answer from the cache
repeats the ``seen`` of the answer it keeps, and a request that does reach
the app raises it. Each test asks for URLs of its own (a nonce argument), so
the tests hold on a second run against the same containers. The scenario
sets the max age to 10 s (inventory/group_vars/all/test.yml).
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections import Counter

from nginxclient import CURL, EXEMPT, fetch

LIMITED = "127.0.0.5"
CACHE_DIR = "/var/cache/nginx/pywps-discovery"
MAX_AGE = 10
# What the pywps role's handler "Empty the discovery cache" runs (roles/pywps/handlers/main.yml).
EMPTY_CACHE = (f"find {CACHE_DIR} -xdev -mindepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{{32}}'"
               " -print -delete")


def wps(query: str) -> str:
    """The WPS URL with QUERY and a nonce of its own."""
    return f"https://wps.test/wps?{query}&nonce={uuid.uuid4().hex}"


def test_a_second_identical_getcapabilities_is_a_hit_that_never_reaches_the_app(host):
    url = wps("service=WPS&request=GetCapabilities")
    first, second = fetch(host, url), fetch(host, url)
    assert (first.status, first.cache, first.echo["seen"]) == (200, "MISS", 1)
    assert (second.status, second.cache) == (200, "HIT")
    assert second.body == first.body  # the kept answer: seen is still 1
    # The front door's headers are on a hit too.
    assert second.header("x-content-type-options") == "nosniff"
    assert "max-age" in second.header("strict-transport-security")
    assert second.header("content-type") == "application/json"
    # The next request that reaches the app is its second one: the hit never got there.
    assert fetch(host, url, "-H", "Cache-Control: no-cache").echo["seen"] == 2


def test_describeprocess_is_cached_and_names_and_values_match_without_case(host):
    for query in ("service=WPS&request=DescribeProcess&version=1.0.0&identifier=hello",
                  "SERVICE=WPS&REQUEST=getcapabilities",
                  "service=WPS&Request=DESCRIBEPROCESS&version=1.0.0&identifier=all"):
        url = wps(query)
        assert [fetch(host, url).cache for _ in range(2)] == ["MISS", "HIT"], query


def test_each_version_language_identifier_and_format_is_an_entry_of_its_own(host):
    nonce = uuid.uuid4().hex
    base = f"https://wps.test/wps?service=WPS&nonce={nonce}&"
    variants = [
        "request=GetCapabilities",
        "request=GetCapabilities&acceptversions=1.0.0",
        "request=GetCapabilities&acceptversions=2.0.0",
        "request=GetCapabilities&language=en-US",
        "request=GetCapabilities&language=fr-CA",
        "request=GetCapabilities&f=json",
        "request=DescribeProcess&version=1.0.0&identifier=hello",
        "request=DescribeProcess&version=2.0.0&identifier=hello",
        "request=DescribeProcess&version=1.0.0&identifier=sleep",
        "request=DescribeProcess&version=1.0.0&identifier=hello,sleep",
        "request=DescribeProcess&version=1.0.0&identifier=hello&language=fr-CA",
        "version=1.0.0&identifier=hello&request=DescribeProcess",  # the same, in another order
    ]
    first = [fetch(host, base + query) for query in variants]
    assert [(r.status, r.cache, r.echo["seen"]) for r in first] == [(200, "MISS", 1)] * len(variants)
    assert [r.echo["path"] for r in first] == ["/wps?" + (base + q).split("?", 1)[1] for q in variants]
    again = [fetch(host, base + query) for query in variants]
    assert [r.cache for r in again] == ["HIT"] * len(variants)
    assert [r.body for r in again] == [r.body for r in first]  # each its own answer


def test_the_accept_header_is_part_of_the_key_and_reaches_the_app_once(host):
    """PyWPS answers JSON or XML by Accept: one client's JSON must not reach another's XML request."""
    url = wps("service=WPS&request=GetCapabilities")
    xml = fetch(host, url, "-H", "Accept: text/xml")
    json_ = fetch(host, url, "-H", "Accept: application/json")
    none = fetch(host, url, "-H", "Accept:")
    assert [(r.cache, r.echo["seen"]) for r in (xml, json_, none)] == [("MISS", 1), ("MISS", 2), ("MISS", 3)]
    assert [r.echo["accept"] for r in (xml, json_, none)] == [["text/xml"], ["application/json"], []]
    assert fetch(host, url, "-H", "Accept: application/json").body == json_.body
    assert fetch(host, url, "-H", "Accept: text/xml").body == xml.body
    # A second Accept line never reaches the app: it reads the value the key holds.
    url = wps("service=WPS&request=GetCapabilities")
    twice = fetch(host, url, "-H", "Accept: text/xml", "-H", "Accept: application/json")
    assert twice.echo["accept"] == ["text/xml"]
    assert fetch(host, url, "-H", "Accept: text/xml").cache == "HIT"


def test_errors_are_never_cached(host):
    """Not even when the app (here the stand-in) gives them a lifetime."""
    for query in ("service=WPS&request=DescribeProcess&version=1.0.0&identifier=nosuch&status=400",
                  "service=WPS&request=GetCapabilities&status=500",
                  "service=WPS&request=GetCapabilities&status=503&retry_after=3",
                  "service=WPS&request=DescribeProcess&identifier=x&status=400&cache_control=max-age%3D600",
                  "service=WPS&request=GetCapabilities&status=404&cache_control=public,max-age%3D600",
                  "service=WPS&request=GetCapabilities&status=301&cache_control=max-age%3D600"):
        url = wps(query)
        replies = [fetch(host, url) for _ in range(3)]
        assert [r.echo["seen"] for r in replies] == [1, 2, 3], query
        assert {r.cache for r in replies} == {"MISS"}, query


def test_an_answer_the_app_marks_not_to_keep_is_not_kept(host):
    for value in ("no-store", "no-cache", "private", "private,%20max-age%3D600"):
        url = wps(f"service=WPS&request=GetCapabilities&cache_control={value}")
        replies = [fetch(host, url) for _ in range(2)]
        assert [(r.status, r.echo["seen"]) for r in replies] == [(200, 1), (200, 2)], value


def test_post_execute_and_other_requests_are_never_cached(host):
    """Only GET discovery: nothing else is looked up, kept, or labelled."""
    for url, args in [
        (wps("service=WPS&request=Execute&version=1.0.0&identifier=hello&datainputs=name=x"), ()),
        (wps("service=WPS&request=GetCapabilitiesX"), ()),
        (wps("service=WPS&request=Get%43apabilities"), ()),  # escaped: the app's to read, never cached
        (wps("service=WPS&xrequest=GetCapabilities"), ()),
        (wps("service=WPS"), ()),
        (wps("service=WPS&request=GetCapabilities"), ("--data", "<GetCapabilities/>")),
        (wps("service=WPS&request=DescribeProcess&identifier=hello"), ("--data", "x")),
    ]:
        replies = [fetch(host, url, *args) for _ in range(2)]
        assert [(r.status, r.echo["seen"]) for r in replies] == [(200, 1), (200, 2)], url
        assert [r.cache for r in replies] == [None, None], url
    # HEAD is refused at the door, as before.
    assert fetch(host, wps("service=WPS&request=GetCapabilities"), "--head").status == 405


def test_a_client_asking_for_a_fresh_answer_gets_one_and_refreshes_the_cache(host):
    url = wps("service=WPS&request=GetCapabilities")
    assert fetch(host, url).echo["seen"] == 1
    for n, header in enumerate(("Cache-Control: no-cache", "Pragma: no-cache", "Cache-Control: max-age=0",
                                "Cache-Control: private, no-cache"), start=2):
        reply = fetch(host, url, "-H", header)
        assert (reply.cache, reply.echo["seen"]) == ("BYPASS", n), header
    # The fresh answer replaced the kept one.
    assert (fetch(host, url).cache, fetch(host, url).echo["seen"]) == ("HIT", 5)
    # no-store: past the cache, and its answer is not kept.
    assert fetch(host, url, "-H", "Cache-Control: no-store").echo["seen"] == 6
    assert fetch(host, url).echo["seen"] == 5
    # A directive that asks for nothing fresh is served from the cache.
    assert fetch(host, url, "-H", "Cache-Control: max-age=60").cache == "HIT"


def test_emptying_the_cache_directory_makes_the_next_request_a_miss(host):
    """What the pywps role's handler does on a deploy, and nginx taking a missing file for a miss."""
    urls = [wps("service=WPS&request=GetCapabilities"), wps("service=WPS&request=DescribeProcess&identifier=all")]
    for url in urls:
        assert [fetch(host, url).cache for _ in range(2)] == ["MISS", "HIT"]
    deleted = host.check_output(EMPTY_CACHE).splitlines()
    assert len(deleted) >= len(urls)
    assert host.check_output(f"find {CACHE_DIR} -type f | wc -l") == "0"
    assert host.file(CACHE_DIR).is_directory and host.file(CACHE_DIR).user == "www-data"
    for url in urls:
        replies = [fetch(host, url) for _ in range(2)]
        assert [(r.cache, r.echo["seen"]) for r in replies] == [("MISS", 2), ("HIT", 2)], url
    assert host.check_output(EMPTY_CACHE + " | wc -l") != "0"  # written again, where the handler finds it


def test_an_answer_expires_after_the_max_age_whatever_the_app_says(host):
    url = wps("service=WPS&request=GetCapabilities&cache_control=public,max-age%3D3600")
    assert [fetch(host, url).cache for _ in range(2)] == ["MISS", "HIT"]
    time.sleep(MAX_AGE + 1)
    reply = fetch(host, url)
    assert (reply.cache, reply.echo["seen"]) == ("EXPIRED", 2)
    assert fetch(host, url).cache == "HIT"


def test_a_crowd_asking_for_a_missing_answer_sends_one_request_to_the_app(host):
    url = wps("service=WPS&request=GetCapabilities&sleep=1")
    out = host.check_output(
        f"{CURL} --interface {EXEMPT} --parallel --parallel-immediate --parallel-max 20"
        f" -w '%{{http_code}} %header{{x-cache-status}}\\n'" + f" -o /dev/null {shlex.quote(url)}" * 20
    )
    seen = Counter(out.splitlines())
    assert seen["200 MISS"] == 1 and sum(seen.values()) == 20, seen
    assert set(seen) <= {"200 MISS", "200 HIT"}, seen
    assert fetch(host, url, "-H", "Cache-Control: no-cache").echo["seen"] == 2


def test_a_kept_answer_is_served_while_the_app_is_down(host):
    url = wps("service=WPS&request=GetCapabilities")
    assert fetch(host, url).cache == "MISS"
    host.check_output("systemctl stop pwg-test-upstream")
    try:
        reply = fetch(host, url)
        assert (reply.status, reply.cache) == (200, "HIT")
        assert fetch(host, wps("service=WPS&request=GetCapabilities")).status == 502  # not kept: the app's to answer
    finally:
        host.check_output("systemctl start pwg-test-upstream")
        deadline = time.monotonic() + 20
        while fetch(host, "https://wps.test/wps?ready=1").status == 502:
            assert time.monotonic() < deadline, "the stand-in upstream did not come back"
            time.sleep(0.2)


def test_hits_count_against_the_per_client_limits(host):
    """A cached answer is cheap, but the client's allowance is the endpoint's, whatever the cache holds:
    otherwise a client could not be told from one whose requests are all new (and reach the app)."""
    url = wps("service=WPS&request=GetCapabilities")
    assert fetch(host, url).cache == "MISS"
    targets = f" -o /dev/null {shlex.quote(url)}" * 60
    out = host.check_output(f"{CURL} --interface {LIMITED} -w '%{{http_code}}\\n'{targets}")
    counts = Counter(int(code) for code in out.split())
    assert set(counts) == {200, 503}, counts
    assert 21 <= counts[200] <= 30, counts

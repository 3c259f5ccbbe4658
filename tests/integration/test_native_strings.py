"""PEP 3333 native strings and response header checks."""

import json
import socket

import pytest

import support


def exchange(srv, raw):
    return support.exchange((srv.host, srv.port), raw, timeout=5)


@pytest.fixture(scope="module")
def edge(module_servers):
    return module_servers.start(["edge_app:app"])


@pytest.fixture(scope="module")
def mounted(module_servers):
    return module_servers.start(["edge_app:app"], env={"SCRIPT_NAME": "/app"})


def environ_of(srv, target, extra=b""):
    data = exchange(srv, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n")
    assert data.startswith(b"HTTP/1.1 200 "), data
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_header_values_go_out_as_latin1(edge):
    data = exchange(edge, b"GET /latin1-header HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"\r\nX-Test: caf\xe9\r\n" in data, data


def test_header_value_beyond_latin1_is_an_app_error(edge):
    assert exchange(edge, b"GET /non-latin1-header HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize("path", [b"/two-lengths", b"/plus-length"])
def test_bad_content_length_from_app_is_an_app_error(edge, path):
    assert exchange(edge, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 500 ")


def test_app_server_header_replaces_ours(edge):
    data = exchange(edge, b"GET /own-server HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.count(b"\r\nserver:") == 1 and b"\r\nserver: mine" in head, data


def test_query_string_and_raw_uri_are_latin1(edge):
    env = environ_of(edge, "/q?x=\u00e9".encode("utf-8"))
    assert env["QUERY_STRING"] == "x=\u00c3\u00a9"
    assert env["RAW_URI"] == "/q?x=\u00c3\u00a9"


def test_content_length_is_the_parsed_length(edge):
    data = exchange(edge, b"POST /cl HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 002\r\n\r\nab")
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["CONTENT_LENGTH"] == "2"


def test_script_name_is_stripped_at_a_segment_boundary(mounted):
    env = environ_of(mounted, b"/app/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x")
    env = environ_of(mounted, b"/application")
    assert env["PATH_INFO"] == "/application"


def test_script_name_with_trailing_slash(module_servers):
    srv = module_servers.start(["edge_app:app"], env={"SCRIPT_NAME": "/app/"})
    env = environ_of(srv, b"/app/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/x")


def test_no_100_continue_after_the_response_started(edge):
    with socket.create_connection((edge.host, edge.port), timeout=5) as s:
        s.sendall(b"POST /write-then-read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        data = s.recv(65536)
        # The app's first write is the final head: no interim response.
        assert data.startswith(b"HTTP/1.1 200 "), data
        s.sendall(b"hello")
        s.settimeout(5)
        while b"0\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert b"100 Continue" not in data, data
    assert b"got 5" in data, data

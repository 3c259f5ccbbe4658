"""PEP 3333 environ: required keys, types, headers, paths, SCRIPT_NAME, and
an app wrapped in wsgiref.validate."""

import json
import time

import pytest



def fetch_environ(srv, target="/environ", method="GET", headers=(), body=b"", version="HTTP/1.1"):
    """Returns (environ description, client's local port)."""
    headers = [("Host", "127.0.0.1:%d" % srv.port)] + list(headers)
    if version == "HTTP/1.1":
        headers.append(("Connection", "close"))
    with srv.connect() as conn:
        resp = conn.request(method, target, headers, body, version)
        local_port = conn.local_port()
    assert resp.status == 200, resp
    return json.loads(resp.body), local_port


def str_value(env, key):
    assert key in env, "%s missing from environ: %s" % (key, sorted(env))
    assert env[key]["type"] == "str", (key, env[key])
    return env[key]["value"]


def bool_value(env, key):
    assert key in env, "%s missing from environ" % key
    assert env[key]["type"] == "bool", (key, env[key])
    return env[key]["value"]


def test_required_keys_and_types(app_server):
    env, local_port = fetch_environ(app_server, "/environ/x?a=1&b=two")

    assert str_value(env, "REQUEST_METHOD") == "GET"
    assert str_value(env, "SCRIPT_NAME") == ""
    assert str_value(env, "PATH_INFO") == "/environ/x"
    assert str_value(env, "QUERY_STRING") == "a=1&b=two"
    # No body: CONTENT_TYPE / CONTENT_LENGTH may be empty or absent.
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in env:
            assert str_value(env, key) == ""
    assert str_value(env, "SERVER_NAME") != ""
    assert str_value(env, "SERVER_PORT") == str(app_server.port)
    assert str_value(env, "SERVER_PROTOCOL") == "HTTP/1.1"

    assert env["wsgi.version"] == {
        "type": "tuple",
        "value": [{"type": "int", "value": 1}, {"type": "int", "value": 0}],
    }
    assert str_value(env, "wsgi.url_scheme") == "http"
    assert {"read", "readline", "readlines", "__iter__"} <= set(env["wsgi.input"]["attrs"])
    assert {"write", "writelines", "flush"} <= set(env["wsgi.errors"]["attrs"])
    assert bool_value(env, "wsgi.multithread") is False
    bool_value(env, "wsgi.multiprocess")
    assert bool_value(env, "wsgi.run_once") is False
    assert bool_value(env, "wsgi.input_terminated") is True
    assert env["wsgi.file_wrapper"]["callable"] is True

    assert str_value(env, "REMOTE_ADDR") == "127.0.0.1"
    assert str_value(env, "REMOTE_PORT") == str(local_port)
    assert str_value(env, "RAW_URI") == "/environ/x?a=1&b=two"
    assert "rwsgi" in str_value(env, "SERVER_SOFTWARE").lower()

    # Every CGI-style key (no dot) holds a native str.
    for key, value in env.items():
        if "." not in key:
            assert value["type"] == "str", (key, value)


def test_http_headers_joined_and_underscores_dropped(app_server):
    env, _ = fetch_environ(
        app_server,
        headers=[
            ("X-Multi", "first"),
            ("X-Dash-Name", "kept"),
            ("X-Multi", "second"),
            ("X_Under", "must-be-dropped"),
            ("User-Agent", "environ-test/1.0"),
        ],
    )
    assert str_value(env, "HTTP_X_MULTI") == "first,second"
    assert str_value(env, "HTTP_X_DASH_NAME") == "kept"
    assert str_value(env, "HTTP_USER_AGENT") == "environ-test/1.0"
    assert str_value(env, "HTTP_HOST") == "127.0.0.1:%d" % app_server.port
    assert "HTTP_X_UNDER" not in env
    assert not [k for k, v in env.items() if v.get("value") == "must-be-dropped"]


def test_content_type_and_length(app_server):
    env, _ = fetch_environ(
        app_server,
        method="POST",
        headers=[("Content-Type", "application/x-test; charset=utf-8")],
        body=b"hello",
    )
    assert str_value(env, "REQUEST_METHOD") == "POST"
    assert str_value(env, "CONTENT_TYPE") == "application/x-test; charset=utf-8"
    assert str_value(env, "CONTENT_LENGTH") == "5"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_path_info_percent_decoded_as_latin1(app_server):
    env, _ = fetch_environ(app_server, "/environ/caf%C3%A9/a%20b?q=caf%C3%A9")
    expected = "/environ/" + "café".encode("utf-8").decode("latin-1") + "/a b"
    assert expected == "/environ/caf\u00c3\u00a9/a b"
    assert str_value(env, "PATH_INFO") == expected
    assert str_value(env, "QUERY_STRING") == "q=caf%C3%A9"  # not decoded
    assert str_value(env, "RAW_URI") == "/environ/caf%C3%A9/a%20b?q=caf%C3%A9"


def test_http10_server_protocol(app_server):
    env, _ = fetch_environ(app_server, version="HTTP/1.0")
    assert str_value(env, "SERVER_PROTOCOL") == "HTTP/1.0"


def test_script_name_from_environment(module_servers):
    srv = module_servers.start(["testapp:app"], env={"SCRIPT_NAME": "/prefix"})
    env, _ = fetch_environ(srv, "/prefix/environ/x?y=1")
    assert str_value(env, "SCRIPT_NAME") == "/prefix"
    assert str_value(env, "PATH_INFO") == "/environ/x"
    assert str_value(env, "QUERY_STRING") == "y=1"
    assert str_value(env, "RAW_URI") == "/prefix/environ/x?y=1"


# -- wsgiref.validate ------------------------------------------------------


@pytest.fixture(scope="module")
def validated_server(module_servers):
    return module_servers.start(["testapp:validated_app"])


def test_validator_get(validated_server):
    resp = validated_server.get("/some/path?x=1")
    assert resp.status == 200, (resp, validated_server.stderr())
    assert resp.body == b"validated GET /some/path"


def test_validator_post(validated_server):
    resp = validated_server.request("POST", "/form", [("Content-Type", "text/plain")], b"line one\nthe rest")
    assert resp.status == 200, (resp, validated_server.stderr())
    assert resp.body == b"posted:line one\nthe rest"


def test_validator_head(validated_server):
    resp = validated_server.request("HEAD", "/head")
    assert resp.status == 200, (resp, validated_server.stderr())
    assert resp.body == b""


def test_validator_reports_nothing(validated_server):
    for method, body in (("GET", b""), ("POST", b"x\ny"), ("HEAD", b"")):
        resp = validated_server.request(method, "/again", body=body)
        assert resp.status == 200, (resp, validated_server.stderr())
    time.sleep(0.3)
    log = validated_server.stderr()
    assert "garbage collected without being closed" not in log, log
    assert "AssertionError" not in log, log
    assert "WSGIWarning" not in log, log

"""Secrets never appear in output (SPEC §4): a password inside an endpoint URL and the values of
secret variables are masked on every message path of the CLI — the error line on stderr, the
``--json`` error object, warnings and problem details — whichever S3 client quoted them.
"""

from __future__ import annotations

import json

import pytest

from syncops import cli as cli_module
from syncops.errors import Unavailable
from syncops.redact import redact
from syncops.report import Report
from tests.conftest import clean_environment, run_cli
from tests.expect import FAKE_AWS, assert_one_line_error
from tests.servers import free_ports

PASSWORD = "hunter2-Pa55word"
SESSION_TOKEN = "FwoGZXIvYXdzEFAKESESSIONTOKEN0123456789"


@pytest.mark.parametrize(
    "source,plane,as_json",
    [("flag", "obstore", True), ("flag", "boto3", False), ("env", "obstore", False), ("env", "boto3", True)],
)
def test_a_password_in_the_endpoint_never_appears_on_a_network_failure(source: str, plane: str, as_json: bool):
    """Both S3 clients quote the URL they could not reach, userinfo included; syncops prints it masked."""
    (port,) = free_ports(1)  # nothing listens there: connection refused
    endpoint = f"http://syncops-user:{PASSWORD}@127.0.0.1:{port}"
    env = {
        **clean_environment(),
        **FAKE_AWS,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "AWS_MAX_ATTEMPTS": "2",
        "SYNCOPS_S3_DATA_PLANE": plane,
    }
    args = ["discover", "s3://some-bucket"]
    if source == "flag":
        args += ["--endpoint-url", endpoint]
    else:
        env["AWS_ENDPOINT_URL"] = endpoint
    result = run_cli(*args, *(["--json"] if as_json else []), env=env)

    assert_one_line_error(result, 4, f"http://***@127.0.0.1:{port}", as_json=as_json)
    printed = result.stdout + result.stderr
    for secret in (PASSWORD, "syncops-user:", SESSION_TOKEN, FAKE_AWS["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in printed


def test_warnings_problems_and_errors_are_redacted_on_every_path(monkeypatch, capsys):
    """The CLI's three message paths, in-process: warnings and problem details (human and --json)
    and the error line; an environment secret and a URL password are masked on each."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value-42")
    leaky = f"via http://me:{PASSWORD}@proxy.example:3128 with env-secret-value-42"
    report = Report(
        url="s3://bucket",
        status="found",
        entries=0,
        warnings=[f"warning {leaky}"],
        problems=[{"kind": "corrupt-index", "key": ".datastore-index.json", "detail": f"detail {leaky}"}],
    )
    for as_json in (False, True):
        cli_module._run("verify", "s3://bucket", as_json, lambda: report, 0)
        out, err = capsys.readouterr()
        assert PASSWORD not in out + err and "env-secret-value-42" not in out + err
        assert "http://***@proxy.example:3128" in (out if as_json else err)
        if as_json:
            payload = json.loads(out)
            assert payload["warnings"] == ["warning via http://***@proxy.example:3128 with ***"]
            assert payload["problems"][0]["detail"] == "detail via http://***@proxy.example:3128 with ***"

    def failing() -> Report:
        raise Unavailable(f"GetObject failed {leaky}\nsecond line")

    for as_json in (False, True):
        with pytest.raises(SystemExit) as exited:
            cli_module._run("discover", "s3://bucket", as_json, failing, 0)
        assert exited.value.code == 4
        out, err = capsys.readouterr()
        assert PASSWORD not in out + err and "env-secret-value-42" not in out + err
        assert (
            err.count("\n") == 1 and "GetObject failed via http://***@proxy.example:3128 with *** | second line" in err
        )


def test_redact_masks_userinfo_and_known_secrets(monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxyuser:pr0xy-pass@proxy:3128")
    assert redact('Could not connect to "http://u:p@ss@h:1/b?x=1"') == 'Could not connect to "http://***@h:1/b?x=1"'
    assert redact("s3://user:pw@bucket and https://host/x@y") == "s3://***@bucket and https://host/x@y"
    assert redact(f"token {SESSION_TOKEN}!") == "token ***!"
    assert redact("the proxy said pr0xy-pass") == "the proxy said ***"
    assert redact("mail bob@example.com, see http://host:9000/") == "mail bob@example.com, see http://host:9000/"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ab")  # too short to search for on its own
    assert redact("a cab") == "a cab"

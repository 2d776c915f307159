"""web.py's pure helpers: bounded JSON parsing, the content-type check, API-token owners and
the redaction of addresses from texts shown to clients."""

from __future__ import annotations

import hashlib
import json

import pytest

from kitapp.web import (
    MAX_JSON_DEPTH,
    BadRequestBody,
    Unauthorised,
    is_json_content_type,
    json_nests_deeper_than,
    parse_json_body,
    redact_addresses,
    token_owner,
)

# --- bounded JSON ---------------------------------------------------------------------------


def test_parse_json_body_decodes_ordinary_json() -> None:
    raw = b'{"task": "sleep", "args": [1, 2.5, -3, true, null, "x"], "kwargs": {}}'
    assert parse_json_body(raw) == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" + b"1" * 21 + b"]", "more than 20 digits"),
        (b"[-" + b"1" * 400 + b"]", "more than 20 digits"),
        (b"[1e400]", "too large"),
        (b"[-1e400]", "too large"),
        (b"[NaN]", "NaN is not a JSON number"),
        (b"[Infinity]", "Infinity is not a JSON number"),
        (b"[" * 33 + b"]" * 33, f"deeper than {MAX_JSON_DEPTH}"),
        (b"[" * 100000, f"deeper than {MAX_JSON_DEPTH}"),  # unterminated, too
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON: it is not UTF-8"),
    ],
)
def test_parse_json_body_refuses_unbounded_input(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequestBody, match=message):
        parse_json_body(raw)


def test_parse_json_body_accepts_twenty_digits_and_tiny_floats() -> None:
    assert parse_json_body(b"[-99999999999999999999, 1e-400, 1.5e300]") == [
        -99999999999999999999,
        0.0,
        1.5e300,
    ]


@pytest.mark.parametrize(
    ("text", "deeper"),
    [
        ("[" * 32 + "]" * 32, False),
        ("[" * 33 + "]" * 33, True),
        ("[]" * 1000, False),  # many brackets, shallow
        ('["' + "[" * 100 + '"]', False),  # inside a string
        ('["\\"' + "[" * 100 + '"]', False),  # after an escaped quote, still inside
        ('["\\\\"' + ", [" * 40 + "]" * 40 + "]", True),  # an escaped backslash ends the string
        ("{" + '"a": {' * 40 + "}" * 41, True),
    ],
)
def test_json_nesting_depth_ignores_strings(text: str, deeper: bool) -> None:
    assert json_nests_deeper_than(text, 32) is deeper


@pytest.mark.parametrize(
    ("mimetype", "params", "ok"),
    [
        ("application/json", {}, True),
        ("application/json", {"charset": "utf-8"}, True),
        ("application/json", {"charset": "UTF-8"}, True),
        ("application/json", {"charset": "iso-8859-1"}, False),
        ("text/plain", {}, False),
        ("application/x-www-form-urlencoded", {}, False),
        ("multipart/form-data", {"boundary": "x"}, False),
        ("", {}, False),
    ],
)
def test_is_json_content_type(mimetype: str, params: dict[str, str], ok: bool) -> None:
    assert is_json_content_type(mimetype, params) is ok


# --- API tokens -----------------------------------------------------------------------------


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_token_owner_is_empty_while_the_api_is_open() -> None:
    assert token_owner(None, ()) == ""
    assert token_owner("Bearer whatever", ()) == ""


def test_token_owner_is_a_prefix_of_the_tokens_hash() -> None:
    hashes = (digest("one"), digest("two"))
    assert token_owner("Bearer two", hashes) == digest("two")[:16]
    assert token_owner("  bearer   two  ", hashes) == digest("two")[:16]


def test_token_owner_accepts_upper_case_configured_hashes() -> None:
    assert token_owner("Bearer one", (digest("one").upper(),)) == digest("one")[:16]


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer three", "Token one", "one", f"Bearer {digest('one')}"]
)
def test_token_owner_refuses_missing_and_wrong_tokens(header: str | None) -> None:
    with pytest.raises(Unauthorised):
        token_owner(header, (digest("one"), digest("two")))


def test_token_owner_refuses_a_non_ascii_token_without_crashing() -> None:
    with pytest.raises(Unauthorised):
        token_owner("Bearer t\u00f6ken\udcff", (digest("one"),))


# --- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Error 111 connecting to 10.0.0.5:6379. Connection refused.",
            "Error 111 connecting to <address>. Connection refused.",
        ),
        (
            "host 'files.example' resolves to 10.1.2.3, a private, loopback, link-local or "
            "reserved address that is not in KITAPP_DOWNLOAD_ALLOWED_NETWORKS",
            "host 'files.example' resolves to <address>, a private, loopback, link-local or "
            "reserved address that is not in KITAPP_DOWNLOAD_ALLOWED_NETWORKS",
        ),
        ("[Errno 111] refused by [fe80::1%eth0]:5672", "[Errno 111] refused by <address>"),
        ("connect to ::1 failed", "connect to <address> failed"),
        ("via 2001:db8::7 and [2001:db8::8]", "via <address> and <address>"),
        ("mapped ::ffff:10.0.0.1.", "mapped <address>."),
        ("network 2001:db8::/32", "network <address>/32"),
        ("Timeout connecting to redis.internal:6379", "Timeout connecting to <address>"),
        ("localhost:5672: refused", "<address>: refused"),
        (
            "HTTP 404 Not Found for http://files.example:8080/a.tgz",
            "HTTP 404 Not Found for http://<address>/a.tgz",
        ),
        ("from 10.0.0.1-10.0.0.9", "from <address>-<address>"),
        ("ip=10.0.0.1:80;", "ip=<address>;"),
        ("(host='172.16.0.4', port=80)", "(host='<address>', port=80)"),
    ],
)
def test_redact_addresses_replaces_ips_and_host_ports(text: str, expected: str) -> None:
    assert redact_addresses(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "URL scheme 'file' is not allowed; use http or https",
        "URLs with user names or passwords are not allowed",
        "HTTP 404 Not Found for https://files.example/a.tgz",
        "download is larger than 1048576 bytes",
        "started 12:30:45, version 1.2.3.4.5",
        "SoftTimeLimitExceeded()",
        "argument 'seconds' of sleep must be <= 290, got 300",
        "[Errno 111] Connection refused",
    ],
)
def test_redact_addresses_leaves_texts_without_addresses_alone(text: str) -> None:
    assert redact_addresses(text) == text

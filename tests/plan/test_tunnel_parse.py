"""Pure tunnel parsing and the exposure verdict (llmops.plan.tunnel)."""

from __future__ import annotations

import pytest

from llmops.plan import tunnel as tp

# A real capture (cloudflared 2022.12.1, ops.md §1.2), each box row its own INF line.
REAL_BOX = """\
2023-01-16T08:32:55Z INF Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick way to experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee, ...
2023-01-16T08:32:55Z INF Requesting new quick Tunnel on trycloudflare.com...
2023-01-16T08:32:58Z INF +--------------------------------------------------------------------------------------------+
2023-01-16T08:32:58Z INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |
2023-01-16T08:32:58Z INF |  https://oklahoma-solo-younger-truck.trycloudflare.com                                     |
2023-01-16T08:32:58Z INF +--------------------------------------------------------------------------------------------+
2023-01-16T08:32:58Z INF Version 2022.12.1
""".splitlines()

API_ERROR = (
    '2024-05-01T10:00:00Z ERR failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": '
    "dial tcp: lookup api.trycloudflare.com: no such host"
)


def test_real_box_gives_the_trycloudflare_url() -> None:
    assert tp.cloudflared_url_from_log(REAL_BOX) == (
        "https://oklahoma-solo-younger-truck.trycloudflare.com"
    )


def test_api_host_in_an_error_line_is_never_the_url() -> None:
    assert tp.cloudflared_url_from_log([API_ERROR]) is None
    assert tp.cloudflared_url_from_log([API_ERROR, *REAL_BOX]) == (
        "https://oklahoma-solo-younger-truck.trycloudflare.com"
    )


def test_box_url_with_any_host_and_json_output_fallback() -> None:
    box = [
        "2024-05-01T10:00:01Z INF +------------------------------------------+",
        "2024-05-01T10:00:01Z INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |",
        "2024-05-01T10:00:01Z INF |  http://127.0.0.1:40123                   |",
        "2024-05-01T10:00:01Z INF +------------------------------------------+",
    ]
    assert tp.cloudflared_url_from_log(box) == "http://127.0.0.1:40123"
    # --output json: no box rows, but the hostname is in a message; only trycloudflare matches
    lines = [
        '{"level":"info","message":"|  https://calm-river-1234.trycloudflare.com  |"}',
        '{"level":"info","message":"http://127.0.0.1:9 is not a tunnel"}',
    ]
    assert tp.cloudflared_url_from_log(lines) == "https://calm-river-1234.trycloudflare.com"
    assert tp.cloudflared_url_from_log(REAL_BOX[:3]) is None  # the box has not come yet


def test_quicktunnel_and_ready_documents() -> None:
    assert (
        tp.quicktunnel_url({"hostname": "a-b-c.trycloudflare.com"})
        == "https://a-b-c.trycloudflare.com"
    )
    assert tp.quicktunnel_url({"hostname": "127.0.0.1:4000"}) == "http://127.0.0.1:4000"
    assert tp.quicktunnel_url({"hostname": ""}) is None
    assert tp.quicktunnel_url({}) is None
    assert tp.quicktunnel_url({"hostname": "api.trycloudflare.com"}) is None
    assert tp.ready_connections({"status": 200, "readyConnections": 2}) == 2
    assert tp.ready_connections({"status": 503, "readyConnections": 0}) == 0
    assert tp.ready_connections({}) == 0


NGROK_ENDPOINTS = {
    "endpoints": [
        {
            "name": "command_line",
            "uri": "/api/endpoints/command_line",
            "url": "https://d95211d2.ngrok.app",
            "upstream": {"url": "http://localhost:8000", "protocol": "https"},
            "inspect": True,
        },
        {
            "name": "other",
            "url": "https://other.ngrok.app",
            "upstream": {"url": "http://localhost:9"},
        },
    ]
}
NGROK_TUNNELS = {  # the deprecated shape, from ngrok's docs (ops.md §2.2)
    "tunnels": [
        {
            "name": "command_line (http)",
            "public_url": "http://d95211d2.ngrok.app",
            "proto": "http",
            "config": {"addr": "localhost:8000", "inspect": True},
        },
        {
            "name": "command_line",
            "uri": "/api/tunnels/command_line",
            "public_url": "https://d95211d2.ngrok.app",
            "proto": "https",
            "config": {"addr": "localhost:8000", "inspect": True},
        },
    ],
    "uri": "/api/tunnels",
}


def test_ngrok_both_api_shapes() -> None:
    new = tp.parse_ngrok_api(NGROK_ENDPOINTS)
    old = tp.parse_ngrok_api(NGROK_TUNNELS)
    assert new[0] == tp.NgrokTunnel(
        "command_line", "https://d95211d2.ngrok.app", "http://localhost:8000"
    )
    assert old[1].upstream == "localhost:8000"
    assert tp.pick_ngrok_url(new, 8000) == "https://d95211d2.ngrok.app"
    assert tp.pick_ngrok_url(old, 8000) == "https://d95211d2.ngrok.app"  # https preferred
    assert tp.pick_ngrok_url(new, 9) == "https://other.ngrok.app"
    assert tp.pick_ngrok_url(new, 1234) is None
    assert tp.parse_ngrok_api({"error_code": 100}) == []


def test_ngrok_log_lines() -> None:
    lines = [
        't=2024-05-01T10:00:00+0000 lvl=info msg="open config file" path=/root/.config/ngrok/ngrok.yml err=nil',
        't=2024-05-01T10:00:00+0000 lvl=info msg="starting web service" obj=web addr=127.0.0.1:4041 allow_hosts=[]',
    ]
    assert tp.ngrok_error_from_log(lines) is None
    assert tp.ngrok_web_addr_from_log(lines) == "127.0.0.1:4041"
    bad = (
        't=2024-05-01T10:00:00+0000 lvl=eror msg="failed to reconnect session" obj=csess '
        'err="authentication failed: Usage of ngrok requires a verified account and authtoken. ERR_NGROK_4018"'
    )
    assert "ERR_NGROK_4018" in (tp.ngrok_error_from_log([*lines, bad]) or "")
    assert tp.ngrok_error_from_log(["ERROR:  ERR_NGROK_4018"]) == "ERROR:  ERR_NGROK_4018"


def test_ngrok_config_text_matches_the_users_version() -> None:
    assert tp.ngrok_config_version('version: "3"\nagent:\n  authtoken: x\n') == "3"
    assert tp.ngrok_config_version("authtoken: x\nversion: 2\n") == "2"
    assert tp.ngrok_config_version("") == "2"
    v3 = tp.ngrok_config_text("3", "127.0.0.1:4041", "tok")
    assert v3 == 'version: "3"\nagent:\n  web_addr: 127.0.0.1:4041\n  authtoken: tok\n'
    assert (
        tp.ngrok_config_text("2", "127.0.0.1:4041", None)
        == 'version: "2"\nweb_addr: 127.0.0.1:4041\n'
    )


def test_url_host_brackets_ipv6() -> None:
    assert tp.url_host("::1") == "[::1]"


@pytest.mark.parametrize(
    ("with_key", "without", "had_key", "allow", "verdict"),
    [
        (200, 401, True, False, "ok"),
        (200, 403, True, False, "ok"),
        (200, 200, True, False, "unprotected"),
        (200, 200, True, True, "unprotected-allowed"),
        (None, None, True, False, "unreachable"),
        (502, 502, True, False, "unreachable"),
        (401, 401, True, False, "unreachable"),  # wrong key: not proven to reach the models
        (None, 401, False, False, "ok"),  # no key known: a 401 proves both
        (None, 200, False, False, "unprotected"),
        (None, None, False, True, "unreachable"),
    ],
)
def test_judge_exposure(
    with_key: int | None, without: int | None, had_key: bool, allow: bool, verdict: str
) -> None:
    c = tp.judge_exposure(
        "https://x.trycloudflare.com",
        with_key_status=with_key,
        without_key_status=without,
        had_key=had_key,
        allow_public_no_auth=allow,
    )
    assert c.verdict == verdict


def test_plan_tunnel_imports_no_process_or_network_module() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(tp))
    names = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    names |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert not names & {
        "subprocess",
        "socket",
        "urllib.request",
        "psutil",
        "paramiko",
        "os",
        "http",
    }

"""plan/tunnel.py's parsers (what cloudflared and ngrok print, ops.md §1-2), pinned where the
mutation benchmark found gaps (benchmarks/MUTATION.md). The exposure verdict is in
tests/run/test_mutants_tunnel.py."""

from __future__ import annotations

from llmops.plan import tunnel as tp

BOX = [
    "2024-05-01T10:00:00Z INF +--------------------------------------------------------------------------------------------+",
    "2024-05-01T10:00:00Z INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |",
    "2024-05-01T10:00:00Z INF |  https://words-here-x.trycloudflare.com/                                                   |",
    "2024-05-01T10:00:00Z INF +--------------------------------------------------------------------------------------------+",
]


def test_the_url_inside_the_box_wins_over_an_earlier_one() -> None:
    early = "INF Requesting new quick Tunnel on https://earlier-one.trycloudflare.com ..."
    assert tp.cloudflared_url_from_log([early, *BOX]) == "https://words-here-x.trycloudflare.com"


def test_the_box_url_may_be_any_host_but_the_service() -> None:
    local = [BOX[0], BOX[1], "INF |  http://127.0.0.1:5555  |", BOX[3]]
    assert tp.cloudflared_url_from_log(local) == "http://127.0.0.1:5555"
    api = [BOX[0], BOX[1], "INF |  https://api.trycloudflare.com  |", BOX[3]]
    assert tp.cloudflared_url_from_log(api) is None


def test_the_fallback_is_the_first_usable_trycloudflare_url() -> None:
    lines = [
        "ERR failed to request quick Tunnel: Post https://api.trycloudflare.com/tunnel",
        "INF at https://first-x.trycloudflare.com and https://second-y.trycloudflare.com",
        "INF also https://third-z.trycloudflare.com",
    ]
    assert tp.cloudflared_url_from_log(lines) == "https://first-x.trycloudflare.com"
    assert tp.cloudflared_url_from_log(["INF starting", "INF no url yet"]) is None


def test_quicktunnel_url() -> None:
    assert (
        tp.quicktunnel_url({"hostname": "a-b.trycloudflare.com"}) == "https://a-b.trycloudflare.com"
    )
    assert (
        tp.quicktunnel_url({"hostname": " a-b.trycloudflare.com/ "})
        == "https://a-b.trycloudflare.com"
    )
    assert tp.quicktunnel_url({"hostname": "127.0.0.1:4567"}) == "http://127.0.0.1:4567"
    assert tp.quicktunnel_url({"hostname": "localhost"}) == "http://localhost"
    assert tp.quicktunnel_url({"hostname": "[::1]"}) == "http://[::1]"
    assert tp.quicktunnel_url({"hostname": "https://x.example.com"}) == "https://x.example.com"
    assert tp.quicktunnel_url({"hostname": "https://api.trycloudflare.com"}) is None
    assert tp.quicktunnel_url({"hostname": "api.trycloudflare.com"}) is None
    for bad in ({}, {"hostname": ""}, {"hostname": "  "}, {"hostname": 5}):
        assert tp.quicktunnel_url(bad) is None


def test_ready_connections() -> None:
    assert tp.ready_connections({"readyConnections": 4}) == 4
    assert tp.ready_connections({"readyConnections": "4"}) == 0
    assert tp.ready_connections({}) == 0


def test_parse_ngrok_api_both_shapes() -> None:
    new = {
        "endpoints": [
            {
                "name": "a",
                "url": "https://a.ngrok.app",
                "upstream": {"url": "http://localhost:8000"},
            },
            "junk",
            {"name": "nourl", "upstream": {"url": "http://localhost:1"}},
        ]
    }
    assert tp.parse_ngrok_api(new) == [
        tp.NgrokTunnel("a", "https://a.ngrok.app", "http://localhost:8000")
    ]
    old = {"tunnels": [{"public_url": "http://b.ngrok.io", "config": {"addr": "localhost:9000"}}]}
    assert tp.parse_ngrok_api(old) == [tp.NgrokTunnel("", "http://b.ngrok.io", "localhost:9000")]
    assert tp.parse_ngrok_api({"endpoints": "x"}) == []
    assert tp.parse_ngrok_api({}) == []
    bare = {"endpoints": [{"url": "https://c.ngrok.app"}]}
    assert tp.parse_ngrok_api(bare) == [tp.NgrokTunnel("", "https://c.ngrok.app", "")]


def test_pick_ngrok_url_by_port_https_first() -> None:
    ts = [
        tp.NgrokTunnel("h", "http://x.ngrok.io", "localhost:8000"),
        tp.NgrokTunnel("s", "https://x.ngrok.io", "http://localhost:8000"),
        tp.NgrokTunnel("o", "https://other.ngrok.io", "localhost:9000"),
        tp.NgrokTunnel("d", "https://digits.ngrok.io", "7000"),
        tp.NgrokTunnel("bad", "https://bad.ngrok.io", "localhost:notaport"),
    ]
    assert tp.pick_ngrok_url(ts, 8000) == "https://x.ngrok.io"
    assert tp.pick_ngrok_url(ts, 9000) == "https://other.ngrok.io"
    assert tp.pick_ngrok_url(ts, 7000) == "https://digits.ngrok.io"
    assert tp.pick_ngrok_url(ts, 1234) is None
    assert tp.pick_ngrok_url(ts[:1], 8000) == "http://x.ngrok.io"


def test_parse_logfmt() -> None:
    kv = tp.parse_logfmt('t=2024 lvl=eror msg="session \\"closed\\"" err="x y" n=1')
    assert kv == {"t": "2024", "lvl": "eror", "msg": 'session "closed"', "err": "x y", "n": "1"}


def test_ngrok_error_from_log() -> None:
    assert tp.ngrok_error_from_log(['lvl=info msg="ok" err=nil', "lvl=info err=<nil>"]) is None
    assert tp.ngrok_error_from_log(['lvl=eror msg="failed to auth"']) == "failed to auth"
    assert tp.ngrok_error_from_log(['lvl=crit err="bad token"']) == "bad token"
    assert tp.ngrok_error_from_log(['lvl=warn err="late"']) == "late"
    assert tp.ngrok_error_from_log(["lvl=error"]) == "lvl=error"
    assert tp.ngrok_error_from_log(["  ERR_NGROK_108 limit  "]) == "ERR_NGROK_108 limit"
    assert tp.ngrok_error_from_log(["lvl=info ERR_NGROK_108 mentioned"]) is None


def test_ngrok_web_addr_from_log() -> None:
    lines = [
        'lvl=info msg="starting web service" addr=127.0.0.1:4041',
        'msg="starting web service"',
    ]
    assert tp.ngrok_web_addr_from_log(lines) == "127.0.0.1:4041"
    assert tp.ngrok_web_addr_from_log(lines[1:]) is None
    assert tp.ngrok_web_addr_from_log(['msg="other" addr=1.2.3.4:5']) is None


def test_a_box_row_before_the_created_line_is_not_the_url() -> None:
    other = "2024-05-01T10:00:00Z INF |  http://127.0.0.1:9  |"
    assert tp.cloudflared_url_from_log([other, *BOX]) == "https://words-here-x.trycloudflare.com"


def test_an_ngrok_endpoint_without_a_url_is_not_a_tunnel() -> None:
    # the deprecated /api/tunnels shape, a tunnel still starting (empty public_url)
    old = {
        "tunnels": [
            {"name": "starting", "public_url": "", "config": {"addr": "localhost:8000"}},
            {"name": "up", "public_url": "https://b.ngrok.app", "config": {"addr": "8000"}},
        ]
    }
    assert [t.name for t in tp.parse_ngrok_api(old)] == ["up"]
    doc = {
        "endpoints": [
            {"name": "starting", "url": "", "upstream": {"url": "http://localhost:8000"}},
            {"name": "up", "url": "https://a.ngrok.app", "upstream": {"url": "localhost:8000"}},
        ]
    }
    assert [t.name for t in tp.parse_ngrok_api(doc)] == ["up"]


def test_an_ngrok_crit_line_is_an_error_even_without_err() -> None:
    # ngrok's logfmt levels: dbug, info, warn, eror, crit
    line = 't=2024-05-01T10:00:00Z lvl=crit msg="failed to start tunnel"'
    assert tp.ngrok_error_from_log([line]) == "failed to start tunnel"
    assert tp.ngrok_error_from_log(['t=x lvl=info msg="started tunnel"']) is None

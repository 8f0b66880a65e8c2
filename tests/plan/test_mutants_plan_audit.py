"""plan/audit.py: how one keyless answer is read, and the verdict over all of them, pinned where
the mutation benchmark found gaps (benchmarks/MUTATION.md)."""

from __future__ import annotations

import json
import re

import pytest

from llmops.plan import audit as pa

URL = "http://127.0.0.1:8080"
GEN = pa.Route("POST", "/v1/chat/completions", pa.GENERATE, "src-gen", body="{}")
ADM = pa.Route("POST", "/admin/reload", pa.ADMIN, "src-adm", probe_method="GET")
LST = pa.Route("GET", "/v1/models", pa.LIST, "src-list")
TOK = pa.Route("POST", "/tokenize", pa.TOKENIZE, "src-tok", body="{}")


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (None, pa.UNKNOWN),
        (200, pa.OPEN),
        (204, pa.OPEN),
        (299, pa.OPEN),
        (300, pa.UNKNOWN),
        (199, pa.UNKNOWN),
        (401, pa.PROTECTED),
        (403, pa.PROTECTED),
        (407, pa.PROTECTED),
        (404, pa.ABSENT),
        (501, pa.ABSENT),
        (405, pa.ABSENT),  # probed with its own method: the route is not served that way
        (400, pa.OPEN),  # the handler judged the body: nothing judged the caller
        (413, pa.OPEN),
        (415, pa.OPEN),
        (422, pa.OPEN),
        (500, pa.UNKNOWN),
        (503, pa.UNKNOWN),
        (429, pa.UNKNOWN),
    ],
)
def test_classify_one_answer(status: int | None, answer: str) -> None:
    assert pa.classify(GEN, status) == answer


def test_a_405_to_the_wrong_method_on_purpose_means_it_got_through() -> None:
    assert ADM.wrong_method and not GEN.wrong_method
    assert pa.classify(ADM, 405) == pa.OPEN
    assert ADM.probe == "GET" and GEN.probe == "POST"
    assert ADM.refusing and GEN.refusing and not LST.refusing and not TOK.refusing


def test_probe_result_keeps_the_route_and_the_answer() -> None:
    p = pa.probe_result(ADM, 405, None)
    assert (p.method, p.path, p.probed_with, p.kind, p.status, p.answer, p.source) == (
        "POST",
        "/admin/reload",
        "GET",
        pa.ADMIN,
        405,
        pa.OPEN,
        "src-adm",
    )
    assert p.label == "POST /admin/reload"
    e = pa.probe_result(GEN, None, "connection refused")
    assert e.error == "connection refused" and e.answer == pa.UNKNOWN


def _audit(*pairs: tuple[pa.Route, int | None], engine: str | None = "llamacpp") -> pa.Audit:
    return pa.judge_audit(URL + "/", engine, [pa.probe_result(r, s) for r, s in pairs])


def test_nothing_answering_is_unreachable_with_the_first_error() -> None:
    a = pa.judge_audit(
        URL,
        None,
        [
            pa.probe_result(GEN, None),
            pa.probe_result(LST, None, "refused"),
            pa.probe_result(TOK, None, "later"),
        ],
    )
    assert a.verdict == "unreachable" and not a.ok
    assert a.detail == f"nothing answered at {URL} (refused)"
    assert pa.judge_audit(URL, None, []).detail == f"nothing answered at {URL}"


def test_an_open_generating_route_is_exposed() -> None:
    a = _audit((GEN, 200), (LST, 401), (ADM, 405))
    assert a.verdict == "exposed" and not a.ok
    assert a.open_routes == ("POST /v1/chat/completions (200)", "POST /admin/reload (405 to GET)")
    assert a.detail == f"open without an API key at {URL}: " + ", ".join(a.open_routes)
    assert a.url == URL  # the trailing slash is dropped


def test_open_listing_routes_alone_are_not_exposure() -> None:
    a = _audit((GEN, 401), (LST, 200), (TOK, 200), (ADM, 404))
    assert a.verdict == "protected" and a.ok and a.open_routes == ()
    assert a.detail == (
        "1 routes refuse a request without the key, 1 not served; "
        "open by design (they list or tokenize): GET /v1/models, POST /tokenize"
    )


def test_protected_without_open_routes_says_only_the_counts() -> None:
    a = _audit((GEN, 401), (LST, 401), (ADM, 404))
    assert a.verdict == "protected"
    assert a.detail == "2 routes refuse a request without the key, 1 not served"


def test_no_route_asking_for_a_key_is_unprotected() -> None:
    a = _audit((GEN, 404), (LST, 200))
    assert a.verdict == "unprotected" and not a.ok
    assert (
        a.detail
        == f"no route at {URL} asked for an API key (GET {URL}/v1/models answered 200, not 401)"
    )
    b = _audit((GEN, 404), (TOK, 200))
    assert b.detail == f"no route at {URL} asked for an API key"


def test_an_unknown_answer_from_a_generating_route_is_inconclusive() -> None:
    a = _audit((GEN, 503), (LST, 401))
    assert a.verdict == "inconclusive" and not a.ok
    assert "POST /v1/chat/completions (503)" in a.detail and "still loading" in a.detail
    b = _audit((GEN, None), (LST, 401))
    assert b.verdict == "inconclusive" and "(no answer)" in b.detail
    c = _audit((GEN, 401), (TOK, 503), (LST, 401))  # an unsure tokenizer is no reason
    assert c.verdict == "protected"


def test_caveats_follow_the_engine() -> None:
    assert _audit((GEN, 401), engine="vllm").caveats == (pa.VLLM_UNGUARDED_ROUTES,)
    assert _audit((GEN, 401), engine="tgi").caveats == (pa.TGI_KEY_IN_ARGV,)
    assert _audit((GEN, 401), engine="sglang").caveats == (pa.SGLANG_KEY_IN_ARGV,)
    assert _audit((GEN, 401), engine="llamacpp").caveats == ()
    assert pa.caveats_for(None) == ()


def test_routes_for_an_engine_and_for_all() -> None:
    for e in pa.ENGINE_NAMES:
        assert pa.routes_for(e) == pa.ROUTES[e]
    union = pa.routes_for(None)
    assert pa.routes_for("nope") == union
    keys = [(r.method, r.path) for r in union]
    assert len(keys) == len(set(keys))  # each route once
    every = {(r.method, r.path) for e in pa.ENGINE_NAMES for r in pa.ROUTES[e]}
    assert set(keys) == every
    order = {pa.GENERATE: 0, pa.ADMIN: 1, pa.TOKENIZE: 2, pa.LIST: 3}
    for r in union:
        rows = [
            x
            for e in pa.ENGINE_NAMES
            for x in pa.ROUTES[e]
            if (x.method, x.path) == (r.method, r.path)
        ]
        assert r.kind == min((x.kind for x in rows), key=order.__getitem__)  # the most severe
        assert r.source == "; ".join(x.source for x in rows)
        assert r.body == rows[0].body
        # a route any engine acts on for GET is probed with PUT; else the first row's probe
        puts = any(x.probe_method == "PUT" for x in rows)
        assert r.probe_method == ("PUT" if puts else rows[0].probe_method)


def test_base_url() -> None:
    assert pa.base_url(" http://h:8000/v1/ ") == "http://h:8000"
    assert pa.base_url("http://h:8000/") == "http://h:8000"
    assert pa.base_url("http://h:8000/v1/x") == "http://h:8000/v1/x"


def test_routes_table_rows() -> None:
    rows = pa.routes_table(["llamacpp"])
    assert len(rows) == len(pa.ROUTES["llamacpp"])
    r0, route = rows[0], pa.ROUTES["llamacpp"][0]
    assert dict(r0) == {
        "engine": "llamacpp",
        "route": route.label,
        "kind": route.kind,
        "probe": route.probe,
        "source": route.source,
    }
    assert len(pa.routes_table()) == sum(len(pa.ROUTES[e]) for e in pa.ENGINE_NAMES)


def test_unprotected_with_a_silent_models_route_says_nothing_about_it() -> None:
    a = _audit((GEN, 404), (LST, None))
    assert a.verdict == "unprotected"
    assert a.detail == f"no route at {URL} asked for an API key"


# ------------------------------------------------------------------------- the tables' shape

_PATH = re.compile(r"/([a-z0-9_\-]+(/[a-z0-9_\-]+)*)?")
_FILE = r"[a-z0-9_]+(/[a-z0-9_]+)*\.(py|rs|cpp)"
_LINES = r" l\.\d+(-\d+)?(, (l\.)?\d+(-\d+)?)*"
_PARENS = r"( \([^()]+\))?"
_CITE = _FILE + _LINES + _PARENS
_CITES = rf"{_CITE}((, |; ){_CITE})*"
#: Where each engine's rows point: the pinned release, then ``file l.N`` (a parenthesis says
#: when the route is mounted or why it answers without a key).
_SOURCE = {
    "tgi": re.compile(r"TGI v3\.3\.7 " + _CITES),
    "vllm": re.compile(r"vLLM 0\.33\.0 vllm/entrypoints/" + _CITES),
    "sglang": re.compile(r"SGLang 0\.5\.23 sglang/srt/" + _CITES),
    "llamacpp": re.compile(r"llama\.cpp b11434 tools/server/" + _CITES),
    "torch": re.compile(r"llmops/backend/routes_(openai|tgi|ops)\.py [a-z_]+" + _PARENS),
}


@pytest.mark.parametrize("engine", pa.ENGINE_NAMES)
def test_every_row_is_a_lowercase_absolute_path_with_a_cited_source(engine: str) -> None:
    """The audit requests exactly these paths, and the README shows each source: a path with
    anything but lowercase segments, or a citation that is not ``file l.N``, is a typo."""
    for r in pa.ROUTES[engine]:
        assert _PATH.fullmatch(r.path), r
        assert _SOURCE[engine].fullmatch(r.source), r.source
        assert r.method in ("GET", "POST") and r.probe in ("GET", "POST", "PUT"), r
        assert r.kind in pa.KINDS, r
        if r.probe == "POST":
            json.loads(r.body)  # a POST probe carries a JSON body
        else:
            assert r.body == "", r


def test_the_kinds_are_the_names_the_json_output_uses() -> None:
    assert set(pa.KINDS) == {"generate", "admin", "tokenize", "list"}
    assert (pa.GENERATE, pa.ADMIN, pa.TOKENIZE, pa.LIST) == pa.KINDS
    kinds = {row["kind"] for row in pa.routes_table()}
    assert kinds == {"generate", "admin", "tokenize", "list"}
    assert {r.kind for r in pa.routes_for(None)} == {"generate", "admin", "tokenize", "list"}


def test_a_row_without_a_note_has_none_and_a_get_post_admin_says_why_it_is_put() -> None:
    assert pa.Route("GET", "/x", pa.LIST, "s").note == ""
    assert pa.Route("GET", "/x", pa.LIST, "s").body == ""
    sgl = {r.path: r for r in pa.ROUTES["sglang"]}
    assert sgl["/flush_cache"].note == "acts on GET and POST: probed with PUT"
    assert sgl["/flush_cache"].probe == "PUT" and sgl["/flush_cache"].method == "POST"
    assert sgl["/update_weights_from_disk"].note == ""
    assert sgl["/update_weights_from_disk"].probe == "GET"


def test_the_route_label_is_method_then_path() -> None:
    assert pa.Route("POST", "/v1/completions", pa.GENERATE, "s").label == "POST /v1/completions"
    rows = pa.routes_table(["tgi"])
    assert rows[-1]["route"] == "GET /metrics" and rows[0]["route"] == "POST /"


@pytest.mark.parametrize(
    ("engine", "paths"),
    [
        # vLLM's dev-mode, RL and pooling routes outside the guarded prefixes: the reason its
        # tunnel is refused; each must be probed
        (
            "vllm",
            {
                "/server_info",
                "/pooling",
                "/classify",
                "/score",
                "/rerank",
                "/wake_up",
                "/sleep",
                "/pause",
                "/resume",
                "/collective_rpc",
                "/reset_prefix_cache",
                "/reset_mm_cache",
                "/reset_encoder_cache",
                "/start_weight_update",
                "/update_weights",
                "/finish_weight_update",
                "/init_weight_transfer_engine",
                "/fault_tolerance/apply",
                "/scale_elastic_ep",
                "/invocations",
                "/generative_scoring",
                "/tokenize",
                "/detokenize",
            },
        ),
        (
            "sglang",
            {
                "/generate",
                "/encode",
                "/classify",
                "/flush_cache",
                "/abort_request",
                "/pause_generation",
                "/continue_generation",
                "/set_internal_state",
                "/freeze_gc",
                "/slow_down",
                "/configure_logging",
                "/server_info",
                "/model_info",
                "/v1/loads",
                "/api/chat",
                "/api/generate",
                "/vertex_generate",
            },
        ),
        ("llamacpp", {"/completion", "/infill", "/slots", "/props", "/lora-adapters"}),
        ("tgi", {"/", "/generate", "/generate_stream", "/vertex", "/invocations", "/info"}),
    ],
)
def test_the_routes_that_need_probing_are_in_the_table(engine: str, paths: set[str]) -> None:
    assert paths <= {r.path for r in pa.ROUTES[engine]}


def test_a_route_that_lists_on_one_engine_and_tokenizes_on_another_is_tokenize(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lst = pa.Route("GET", "/x", pa.LIST, "a")
    tok = pa.Route("GET", "/x", pa.TOKENIZE, "b")
    gen = pa.Route("GET", "/x", pa.GENERATE, "c")
    for eng in pa.ENGINE_NAMES:
        monkeypatch.setitem(pa.ROUTES, eng, ())
    monkeypatch.setitem(pa.ROUTES, "tgi", (lst,))
    monkeypatch.setitem(pa.ROUTES, "vllm", (tok,))
    (merged,) = pa.routes_for(None)
    assert (merged.kind, merged.source) == (pa.TOKENIZE, "a; b")
    monkeypatch.setitem(pa.ROUTES, "sglang", (lst,))
    assert pa.routes_for(None)[0].kind == pa.TOKENIZE  # a later, milder row keeps it
    monkeypatch.setitem(pa.ROUTES, "llamacpp", (gen,))
    assert pa.routes_for(None)[0].kind == pa.GENERATE


def test_base_url_keeps_a_host_name_in_capitals() -> None:
    assert pa.base_url("http://GPU-BOX/") == "http://GPU-BOX"
    assert pa.base_url("http://GPU-BOX:8000/v1") == "http://GPU-BOX:8000"
    assert pa.judge_audit("http://GPU-BOX/", None, [pa.probe_result(GEN, 401)]).url == (
        "http://GPU-BOX"
    )


def test_torch_rows_name_a_handler_that_exists_in_the_cited_file() -> None:
    """A torch row cites ``llmops/backend/routes_*.py HANDLER``: that file defines the handler."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for r in pa.ROUTES["torch"]:
        path, handler = r.source.split(" (")[0].split(" ")
        text = (root / path).read_text()
        assert f"def {handler}(" in text, r.source

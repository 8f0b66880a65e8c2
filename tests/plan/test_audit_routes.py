"""The exposure audit's route table and judging (pure): llmops/plan/audit_routes.py and audit.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from llmops.plan import audit as pa

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engines"


def _paths(engine: str, kinds: tuple[str, ...] = pa.KINDS) -> set[str]:
    return {r.path for r in pa.ROUTES[engine] if r.kind in kinds}


def test_every_engine_lists_the_routes_the_brief_names_each_with_its_source() -> None:
    openai = {"/v1/chat/completions", "/v1/completions", "/v1/models"}
    assert openai <= _paths("tgi") and openai <= _paths("vllm") and openai <= _paths("llamacpp")
    assert {"/generate", "/generate_stream", "/info", "/invocations"} <= _paths("tgi")
    assert {
        "/invocations",
        "/tokenize",
        "/detokenize",
        "/pause",
        "/resume",
        "/v1/responses",
        "/v1/embeddings",
    } <= _paths("vllm")
    assert {
        "/completion",
        "/completions",
        "/slots",
        "/props",
        "/tokenize",
        "/infill",
        "/embedding",
    } <= _paths("llamacpp")
    assert {"/v1/chat/completions", "/generate", "/generate_stream", "/"} <= _paths(
        "torch", (pa.GENERATE,)
    )
    assert {
        "/generate",
        "/v1/chat/completions",
        "/v1/completions",
        "/invocations",
        "/encode",
    } <= _paths("sglang", (pa.GENERATE,))
    assert {
        "/flush_cache",
        "/update_weights_from_disk",
        "/abort_request",
        "/pause_generation",
        "/load_lora_adapter",
        "/start_profile",
        "/release_memory_occupation",
    } <= _paths("sglang", (pa.ADMIN,))
    for engine, routes in pa.ROUTES.items():
        for r in routes:
            assert r.kind in pa.KINDS and r.source, (engine, r)
            assert r.method in ("GET", "POST")
            if r.probe == "POST":
                json.loads(r.body)  # a real JSON body
            # a route that acts is never probed with a method it acts on: a POST route with
            # GET (or PUT where it acts on GET too); only listing admin routes with their GET
            if r.kind == pa.ADMIN:
                assert r.probe in ("GET", "PUT"), r
                assert r.wrong_method or r.method == "GET", r
                if "acts on GET" in r.note:
                    assert r.probe == "PUT", r
        assert len({(r.method, r.path) for r in routes}) == len(routes), engine


def test_the_table_agrees_with_the_engines_recorded_auth_facts() -> None:
    """tests/fixtures/engines/*.json http_auth (from the engines' source) vs the table."""
    tgi = json.loads((FIXTURES / "tgi.json").read_text())["http_auth"]
    rows = {(r.method, r.path): r for r in pa.TGI}
    for path in tgi["protected_paths"]:
        assert ("POST", path) in rows and "base_routes" in rows[("POST", path)].source
    for path in ("/info", "/v1/models", "/chat_tokenize", "/metrics"):  # public by design
        (row,) = [r for r in pa.TGI if r.path == path]
        assert path in tgi["public_paths"] and not row.refusing and "info_routes" in row.source
    vllm = json.loads((FIXTURES / "vllm.json").read_text())["http_auth"]
    assert tuple(vllm["protected_prefixes"]) == pa.VLLM_GUARDED_PREFIXES
    guarded = [r for r in pa.VLLM if r.path.startswith(pa.VLLM_GUARDED_PREFIXES)]
    outside = [r for r in pa.VLLM if not r.path.startswith(pa.VLLM_GUARDED_PREFIXES)]
    # every row says whether the key guards it: the open ones carry the note, the others not
    assert all("answers without the key" in r.note for r in outside)
    assert not any("answers without the key" in r.note for r in guarded)
    assert {"/invocations", "/generative_scoring", "/pause", "/scale_elastic_ep"} <= {
        r.path for r in outside if r.refusing
    }
    # 0.33.0 moved these behind the key (0.20.2 guarded only /v1)
    assert {"/v2/rerank", "/v2/embed", "/inference/v1/generate", "/cohere/v2/chat"} <= {
        r.path for r in guarded
    }
    sglang = json.loads((FIXTURES / "sglang.json").read_text())["http_auth"]
    assert tuple(sglang["public_prefixes"]) == pa.SGLANG_OPEN_PREFIXES and sglang["env"] is None
    for r in pa.SGLANG:  # nothing that generates or administers sits under an open prefix
        assert r.path.startswith(pa.SGLANG_OPEN_PREFIXES) == (r.path == "/metrics"), r
    llama = json.loads((FIXTURES / "llamacpp.json").read_text())["http_auth"]
    assert not {r.path for r in pa.LLAMACPP} & set(llama["public_paths"])  # /health not probed


@pytest.mark.parametrize(
    ("status", "wrong_method", "answer"),
    [
        (200, False, pa.OPEN),
        (204, True, pa.OPEN),
        (422, False, pa.OPEN),  # the body was judged, the caller was not
        (400, False, pa.OPEN),
        (401, False, pa.PROTECTED),
        (403, True, pa.PROTECTED),
        (404, False, pa.ABSENT),
        (501, False, pa.ABSENT),
        (405, False, pa.ABSENT),  # probed with its own method: not served that way
        (405, True, pa.OPEN),  # GET to a POST-only admin route got past any auth layer
        (404, True, pa.ABSENT),
        (503, False, pa.UNKNOWN),
        (302, False, pa.UNKNOWN),
        (None, False, pa.UNKNOWN),
    ],
)
def test_classify(status: int | None, wrong_method: bool, answer: str) -> None:
    route = pa.Route("POST", "/x", pa.ADMIN, "src", probe_method="GET" if wrong_method else "")
    assert pa.classify(route, status) == answer


def _probes(engine: str, answers: Mapping[str, int | None], default: int | None) -> list[pa.Probe]:
    return [pa.probe_result(r, answers.get(r.path, default)) for r in pa.routes_for(engine)]


def test_a_server_that_guards_v1_models_but_not_chat_is_exposed() -> None:
    """Issue 14 item 2: 401 on GET /v1/models, 200 on POST /v1/chat/completions."""
    a = pa.judge_audit(
        "http://h:1/", None, _probes("x", {"/v1/chat/completions": 200}, default=401)
    )
    assert a.verdict == "exposed" and not a.ok
    assert a.open_routes == ("POST /v1/chat/completions (200)",)
    assert "POST /v1/chat/completions (200)" in a.detail and a.url == "http://h:1"


def test_llmops_backend_and_tgi_with_a_key_pass_though_v1_models_is_open() -> None:
    """Issue 14 item 2, the other way round: /v1/models and /info are open by design."""
    for engine in ("torch", "tgi"):
        open_by_design = {"/v1/models": 200, "/info": 200, "/metrics": 200, "/chat_tokenize": 200}
        a = pa.judge_audit("http://h:1", engine, _probes(engine, open_by_design, default=401))
        assert a.verdict == "protected" and a.ok, a.detail
        assert "GET /v1/models" in a.detail and a.open_routes == ()
    tgi = pa.judge_audit("http://h:1", "tgi", _probes("tgi", {}, default=401))
    assert tgi.caveats == (pa.TGI_KEY_IN_ARGV,) and "ps" in pa.TGI_KEY_IN_ARGV
    assert "launcher/src/main.rs" in pa.TGI_KEY_IN_ARGV and "127.0.0.1" in pa.TGI_KEY_IN_ARGV


def test_vllm_with_a_key_is_exposed_through_invocations() -> None:
    """vLLM 0.33.0's key guards /v1, /v2, /inference, /cohere only: its always-mounted
    /invocations generates without one."""
    answers = {
        r.path: (401 if r.path.startswith(pa.VLLM_GUARDED_PREFIXES) else 404) for r in pa.VLLM
    }
    answers["/invocations"] = 200
    answers["/tokenize"] = 200
    a = pa.judge_audit("http://h:1", "vllm", _probes("vllm", answers, default=404))
    assert a.verdict == "exposed" and a.open_routes == ("POST /invocations (200)",)
    assert a.caveats == (pa.VLLM_UNGUARDED_ROUTES,)
    assert "/v2" in pa.VLLM_UNGUARDED_ROUTES and "/inference" in pa.VLLM_UNGUARDED_ROUTES
    assert "authenticate.py" in pa.VLLM_UNGUARDED_ROUTES


def _sglang_answer(route: pa.Route, keyed: bool) -> int:
    """SGLang 0.5.23 (srt/utils/auth.py decide_request_auth) without a credential: with
    --api-key every path but /health*, /ready*, /metrics* answers 401; without one every
    route answers (a request sent with a method the route does not serve: 405)."""
    if keyed and not route.path.startswith(pa.SGLANG_OPEN_PREFIXES):
        return 401
    return 405 if route.wrong_method else 200


def test_sglang_with_its_key_is_protected_and_says_the_key_is_in_argv() -> None:
    probes = [pa.probe_result(r, _sglang_answer(r, keyed=True)) for r in pa.SGLANG]
    a = pa.judge_audit("http://h:30000", "sglang", probes)
    assert a.verdict == "protected" and a.ok and a.open_routes == ()
    answers = {p.path: p.answer for p in probes}
    assert {p for p, v in answers.items() if v == pa.OPEN} == {"/metrics"}
    for path in ("/generate", "/v1/chat/completions", "/flush_cache", "/abort_request"):
        assert answers[path] == pa.PROTECTED
    assert "open by design (they list or tokenize): GET /metrics" in a.detail
    assert a.caveats == (pa.SGLANG_KEY_IN_ARGV,)
    for words in ("--api-key", "ps", "$SGLANG_API_KEY", "127.0.0.1", "no environment variable"):
        assert words in pa.SGLANG_KEY_IN_ARGV


def test_sglang_without_a_key_is_exposed_by_generate_and_admin_routes() -> None:
    probes = [pa.probe_result(r, _sglang_answer(r, keyed=False)) for r in pa.SGLANG]
    a = pa.judge_audit("http://h:30000", "sglang", probes)
    assert a.verdict == "exposed"
    assert {"POST /generate (200)", "POST /v1/chat/completions (200)"} <= set(a.open_routes)
    assert "POST /update_weights_from_disk (405 to GET)" in a.open_routes
    assert "POST /flush_cache (405 to PUT)" in a.open_routes  # PUT: GET would flush it
    assert "POST /tokenize (200)" not in a.open_routes  # tokenizing is shown, not refused


def test_the_standins_guard_exactly_the_prefixes_the_tables_name() -> None:
    """tests/support/engine_standin.py's key rule (from the fixtures) is the tables' rule."""
    from tests.support import engine_standin

    assert engine_standin.auth_rule("vllm") == "prefix " + " ".join(pa.VLLM_GUARDED_PREFIXES)
    assert engine_standin.auth_rule("sglang") == "public-prefix " + " ".join(
        pa.SGLANG_OPEN_PREFIXES
    )


def test_sglang_admin_routes_that_act_on_get_are_never_probed_with_get() -> None:
    acting = {"/flush_cache", "/start_profile", "/stop_profile", "/release_memory_occupation"}
    rows = {r.path: r for r in pa.SGLANG}
    for path in acting:
        assert rows[path].probe == "PUT" and pa.classify(rows[path], 405) == pa.OPEN
    union = {r.path: r for r in pa.routes_for(None)}  # vLLM's /start_profile comes first
    for path in acting:
        assert union[path].probe == "PUT", path


def test_an_admin_route_answering_405_to_get_is_exposed() -> None:
    a = pa.judge_audit("http://h:1", "vllm", _probes("vllm", {"/pause": 405}, default=401))
    assert a.verdict == "exposed" and a.open_routes == ("POST /pause (405 to GET)",)


def test_llamacpp_open_slots_or_props_are_exposed_and_keyed_passes() -> None:
    a = pa.judge_audit("http://h:1", "llamacpp", _probes("llamacpp", {"/slots": 200}, 401))
    assert a.verdict == "exposed" and a.open_routes == ("GET /slots (200)",)
    assert pa.judge_audit("http://h:1", "llamacpp", _probes("llamacpp", {}, 401)).ok


def test_other_verdicts() -> None:
    none = pa.judge_audit("http://h:1", "tgi", _probes("tgi", {}, default=None))
    assert none.verdict == "unreachable"
    nothing_asks = pa.judge_audit("http://h:1", None, _probes("x", {"/v1/models": 404}, 404))
    assert nothing_asks.verdict == "unprotected"
    assert "GET http://h:1/v1/models answered 404, not 401" in nothing_asks.detail
    loading = pa.judge_audit(
        "http://h:1", "llamacpp", _probes("llamacpp", {"/v1/models": 401}, default=503)
    )
    assert loading.verdict == "inconclusive" and "503" in loading.detail


def test_the_union_for_an_unknown_engine_keeps_the_most_severe_kind() -> None:
    union = pa.routes_for(None)
    keys = [(r.method, r.path) for r in union]
    assert len(keys) == len(set(keys))
    every = {(r.method, r.path) for e in pa.ENGINE_NAMES for r in pa.ROUTES[e]}
    assert set(keys) == every
    (tok,) = [r for r in union if r.path == "/tokenize"]
    assert tok.kind == pa.TOKENIZE and "TGI" in tok.source and "vLLM" in tok.source
    assert pa.routes_for("tgi") == pa.TGI


def test_base_url() -> None:
    assert pa.base_url("http://h:8000/v1/") == "http://h:8000"
    assert pa.base_url("https://x.trycloudflare.com") == "https://x.trycloudflare.com"

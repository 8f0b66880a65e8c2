"""LaunchPlans carried out on the real Docker engine: what each engine's container receives,
and a full start → ready → ps → logs → down cycle, a crash and a timeout."""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request

import pytest

from llmops.errors import LlmopsError
from llmops.hw.facts import DockerFacts, GpuInfo, HostFacts, NvidiaFacts
from llmops.plan.launch import LaunchOptions, plan_launch
from llmops.run.deployments import Deployments
from llmops.run.docker import DockerRuntime, LaunchError
from llmops.run.native import NativeRuntime
from llmops.run.state import DeploymentStore
from llmops.run.up import StartupFailed, pick_port, preflight, up
from tests.support.launch_cases import AWQ as MISTRAL_AWQ
from tests.support.launch_cases import GGUF as QWEN_GGUF
from tests.support.sentinels import unique

pytestmark = pytest.mark.docker


def gpu_facts(n: int = 2, cuda: str = "12.4") -> HostFacts:
    return HostFacts(
        llmops_version="t",
        collected_at="t",
        nvidia=NvidiaFacts(
            driver_version="550.54.15",
            cuda_driver_version=cuda,
            gpus=tuple(GpuInfo(i, compute_capability="8.6") for i in range(n)),
        ),
    )


@pytest.fixture
def store(tmp_path) -> DeploymentStore:  # type: ignore[no-untyped-def]
    return DeploymentStore(tmp_path / "home")


@pytest.fixture
def runtime(docker_client):  # type: ignore[no-untyped-def]
    rt = DockerRuntime(docker_client)  # this test's install (its own LLMOPS_HOME)
    yield rt
    for st in rt.list():  # only this install's containers: nothing else is listed
        rt.stop(st.name, 1)


def inspect(docker_client, plan):  # type: ignore[no-untyped-def]
    return docker_client.api.inspect_container(f"llmops-{plan.name}")


SECRETS = {
    "API_KEY": "sk-llmops-SECRETVALUE1234",
    "VLLM_API_KEY": "sk-llmops-SECRETVALUE1234",
    "LLAMA_API_KEY": "sk-llmops-SECRETVALUE1234",
    "SGLANG_API_KEY": "sk-llmops-SECRETVALUE1234",
    "HF_TOKEN": "hf_TOKENVALUE5678",
}


def test_tgi_container_receives_the_plan(docker_client, engine_images, runtime, tmp_path) -> None:
    opts = LaunchOptions(
        engine="tgi",
        name=unique("t-tgi"),
        context=8192,
        gpus=(0, 1),
        host_port=18080,
        hf_token=True,
        hf_cache_dir=str(tmp_path / "hf"),
    )
    plan = plan_launch(MISTRAL_AWQ, opts, gpu_facts())
    assert plan.image == "ghcr.io/huggingface/text-generation-inference:3.3.7"  # its last release
    plan = dataclasses.replace(plan, image=engine_images("tgi", "hang"))
    runtime.create(plan, SECRETS)
    info = inspect(docker_client, plan)
    host = info["HostConfig"]
    assert host["ShmSize"] == 2048 * 2 * 1024 * 1024  # 2 GiB per shard when sharded
    (req,) = host["DeviceRequests"]
    assert req["DeviceIDs"] == ["0", "1"] and req["Capabilities"] == [["gpu"]]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}
    assert host["Mounts"][0]["Target"] == "/data" and host["Mounts"][0]["Source"] == str(
        tmp_path / "hf"
    )
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "50m"},
    }
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["API_KEY"] == SECRETS["API_KEY"] and env["HF_TOKEN"] == SECRETS["HF_TOKEN"]
    cmd = info["Config"]["Cmd"]
    assert cmd[:2] == ["--model-id", MISTRAL_AWQ.repo]
    assert cmd[cmd.index("--num-shard") + 1] == "2"
    assert cmd[cmd.index("--max-total-tokens") + 1] == "8192"
    assert cmd[cmd.index("--max-input-tokens") + 1] == "8191"
    # compute capability 8.6: TGI's chunked prefill needs no prefill budget of the whole input,
    # and an AWQ repo carries its own quantization_config (no --quantize to contradict it)
    assert "--max-batch-prefill-tokens" not in cmd and "--quantize" not in cmd
    assert cmd[cmd.index("--hostname") + 1] == "0.0.0.0"
    labels = info["Config"]["Labels"]
    assert labels["llmops.deployment"] == plan.name and labels["llmops.port"] == "18080"
    assert labels["llmops.install"] == runtime.install  # this install's, and only it sees it
    # no secret in the command line or the labels
    blob = " ".join(cmd) + " ".join(f"{k}={v}" for k, v in labels.items())
    assert "SECRETVALUE" not in blob and "TOKENVALUE" not in blob


def test_vllm_container_uses_ipc_host_and_the_vllm_entrypoint(
    docker_client, engine_images, runtime, tmp_path
) -> None:
    opts = LaunchOptions(
        engine="vllm",
        name=unique("t-vllm"),
        context=16384,
        gpus=(0, 1),
        host_port=18000,
        hf_cache_dir=str(tmp_path / "hf"),
    )
    plan = plan_launch(MISTRAL_AWQ, opts, gpu_facts(cuda="12.9"))
    assert plan.image == "vllm/vllm-openai:v0.33.0-cu129"  # CUDA 12.9 driver → cu129 build
    plan = dataclasses.replace(plan, image=engine_images("vllm", "hang"))
    runtime.create(plan, SECRETS)
    info = inspect(docker_client, plan)
    assert info["HostConfig"]["IpcMode"] == "host"
    assert info["Config"]["Entrypoint"] == ["vllm"]
    cmd = info["Config"]["Cmd"]
    assert cmd[:2] == ["serve", MISTRAL_AWQ.repo]
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2"
    assert cmd[cmd.index("--max-model-len") + 1] == "16384"
    targets = {m["Target"] for m in info["HostConfig"]["Mounts"]}
    assert targets == {"/root/.cache/huggingface", "/root/.cache/vllm"}
    assert "VLLM_API_KEY" in "".join(info["Config"]["Env"])


def test_llamacpp_cpu_container(docker_client, engine_images, runtime, tmp_path) -> None:
    opts = LaunchOptions(
        engine="llamacpp",
        name=unique("t-llama"),
        context=4096,
        host_port=18081,
        data_dir=str(tmp_path / "state"),
    )
    plan = plan_launch(QWEN_GGUF, opts, None)
    assert plan.image == "ghcr.io/ggml-org/llama.cpp:server-b11434"  # CPU build, pinned
    plan = dataclasses.replace(plan, image=engine_images("llamacpp", "hang"))
    runtime.create(plan, SECRETS)
    info = inspect(docker_client, plan)
    assert info["HostConfig"]["DeviceRequests"] in (None, [])
    cmd = info["Config"]["Cmd"]
    assert cmd[cmd.index("-hff") + 1] == QWEN_GGUF.file and cmd[cmd.index("-ngl") + 1] == "0"
    assert "LLAMA_CACHE=/models" in info["Config"]["Env"]


def test_gpu_request_without_nvidia_runtime_is_refused_clearly(
    docker_client, engine_images, runtime, store, tmp_path
) -> None:
    opts = LaunchOptions(
        engine="tgi", name=unique("t-gpu"), gpus=(0,), host_port=18082, hf_cache_dir=str(tmp_path)
    )
    plan = dataclasses.replace(
        plan_launch(MISTRAL_AWQ, opts, gpu_facts(1)), image=engine_images("tgi", "hang")
    )
    # preflight catches it from the facts ...
    facts = dataclasses.replace(
        gpu_facts(1), docker=DockerFacts(reachable=True, runtimes=("runc",))
    )
    with pytest.raises(LlmopsError) as e:
        preflight(
            plan,
            facts,
            weights_bytes=None,
            hf_cache_dir=str(tmp_path),
            gated=False,
            has_token=False,
            explicit_port=False,
        )
    assert "nvidia-ctk runtime configure" in (e.value.hint or "")
    # ... and the engine's own refusal is translated too, leaving nothing behind
    with pytest.raises(LaunchError) as e2:
        up(plan, runtime, store, {}, api_key=None, timeout_s=5)
    assert "could not select device driver" in e2.value.message or "CDI" in e2.value.message
    assert "nvidia-container-toolkit" in (e2.value.hint or "")
    assert not runtime.state(plan.name).exists and store.load(plan.name) is None


def test_sglang_serves_with_its_key_rule_and_the_key_stays_out_of_the_command(
    docker_client, engine_images, runtime, store, tmp_path
) -> None:
    """The stand-in runs the plan's own `/bin/sh -c 'exec python3 -m sglang.launch_server ...'`
    line: its parser (SGLang 0.5.23's options) accepts it, the shell expands the key from the
    environment, and the routes follow srt/utils/auth.py (/health open, /v1 needs the key)."""
    port = pick_port(18300, set())
    opts = LaunchOptions(
        engine="sglang",
        name=unique("t-sglang"),
        context=8192,
        gpus=(0,),
        host_port=port,
        hf_cache_dir=str(tmp_path / "hf"),
    )
    plan = plan_launch(MISTRAL_AWQ, opts, gpu_facts(n=1, cuda="13.0"))
    assert plan.image == "lmsysorg/sglang:v0.5.23-cu130"
    # no GPU here: drop the device request, keep the command
    plan = dataclasses.replace(plan, image=engine_images("sglang", "serve"), gpus=())
    key = "sk-sglang-SECRETVALUE42"
    res = up(plan, runtime, store, {"SGLANG_API_KEY": key}, api_key=key, timeout_s=60, poll_s=0.3)
    assert res.ready
    info = inspect(docker_client, plan)
    assert info["Config"]["Entrypoint"] == ["/bin/sh"]
    assert key not in " ".join(info["Config"]["Cmd"])
    base = f"http://127.0.0.1:{port}"
    assert urllib.request.urlopen(base + "/health", timeout=5).status == 200
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(base + "/v1/models", timeout=5)
    assert denied.value.code == 401
    req = urllib.request.Request(base + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert b'"id":"mistral7b"' in urllib.request.urlopen(req, timeout=5).read()
    assert runtime.stop(plan.name, 2) is not False


def _serve_plan(engine_images, tmp_path, name: str, mode: str, port: int):  # type: ignore[no-untyped-def]
    opts = LaunchOptions(
        engine="llamacpp",
        name=name,
        host_port=port,
        data_dir=str(tmp_path),
        image=engine_images("llamacpp", mode),
    )
    return plan_launch(QWEN_GGUF, opts, None)


def test_full_cycle_up_ready_ps_logs_down(
    docker_client, engine_images, runtime, store, tmp_path
) -> None:
    port = pick_port(18100, set())
    plan = _serve_plan(engine_images, tmp_path, unique("t-cycle"), "serve", port)
    phases: list[str] = []
    res = up(
        plan,
        runtime,
        store,
        {"LLAMA_API_KEY": "sk-x"},
        api_key="sk-x",
        timeout_s=60,
        on_phase=phases.append,
        poll_s=0.3,
    )
    assert res.ready
    models = f"http://127.0.0.1:{port}/v1/models"
    with pytest.raises(urllib.error.HTTPError) as denied:  # llama.cpp guards it with the key
        urllib.request.urlopen(models, timeout=5)
    assert denied.value.code == 401
    req = urllib.request.Request(models, headers={"Authorization": "Bearer sk-x"})
    body = urllib.request.urlopen(req, timeout=5).read()
    assert b'"object":"list"' in body
    d = Deployments(store, runtime, NativeRuntime(store))
    (row,) = [r for r in d.status() if r.name == plan.name]
    assert (row.status, row.health, row.runtime, row.port, row.engine) == (
        "running",
        "ready",
        "docker",
        port,
        "llamacpp",
    )
    assert "Starting Webserver" in d.logs(plan.name, None)
    # the state survives a fresh view (no in-memory state): a new Deployments sees it
    assert (
        plan.name in Deployments(store, DockerRuntime(docker_client), NativeRuntime(store)).names()
    )
    assert d.stop(plan.name, 2) is True
    assert not runtime.state(plan.name).exists and plan.name not in d.names()


def test_crash_at_start_is_diagnosed_and_cleaned_up(
    docker_client, engine_images, runtime, store, tmp_path
) -> None:
    plan = _serve_plan(engine_images, tmp_path, unique("t-crash"), "crash", pick_port(18200, set()))
    with pytest.raises(StartupFailed) as e:
        up(plan, runtime, store, {}, api_key=None, timeout_s=60, poll_s=0.3)
    assert "while starting" in e.value.message and "ran out of memory" in e.value.message
    assert "CUDA out of memory" in e.value.log_tail
    assert "--context" in (e.value.hint or "")
    assert not runtime.state(plan.name).exists and store.load(plan.name) is None


def test_never_ready_times_out_and_cleans_up(
    docker_client, engine_images, runtime, store, tmp_path
) -> None:
    plan = _serve_plan(engine_images, tmp_path, unique("t-hang"), "hang", pick_port(18300, set()))
    with pytest.raises(StartupFailed) as e:
        up(plan, runtime, store, {}, api_key=None, timeout_s=3, poll_s=0.5)
    assert "not ready after 3 s" in e.value.message
    assert "Loading model" in e.value.log_tail
    assert not runtime.state(plan.name).exists


def test_only_this_installs_containers_are_its_own(
    docker_client, busybox_image, engine_images, runtime, store, tmp_path
) -> None:
    """A deployment label proves nothing (images carry labels; other installs share the
    engine): ps/down/kill see a container only with this install's ``llmops.install`` id."""
    name = unique("t-own")
    made = []
    try:
        for labels, cname in (
            ({"llmops.deployment": name, "llmops.install": "0" * 16}, f"{name}-other"),
            ({"llmops.deployment": name}, f"{name}-inherited"),
            ({"llmops.deployment": name, "llmops.install": "f" * 16}, f"llmops-{name}"),
        ):
            made.append(
                docker_client.containers.run(
                    busybox_image, ["sleep", "1000"], detach=True, labels=labels, name=cname
                )
            )
        d = Deployments(store, runtime, NativeRuntime(store))
        assert name not in d.names() and not runtime.state(name).exists
        assert runtime.list() == [] and all(not s.name.startswith(name) for s in d.status())
        with pytest.raises(LlmopsError, match="no deployment named"):
            d.stop(name)
        # the container name is taken by another install's: a clear error, nothing touched
        plan = _serve_plan(engine_images, tmp_path, name, "serve", pick_port(18400, set()))
        with pytest.raises(LaunchError) as e:
            up(plan, runtime, store, {}, api_key=None, timeout_s=10, poll_s=0.3)
        assert e.value.message == (
            f"a container named llmops-{name} already exists and was not started by this "
            "llmops install"
        )
        assert "--name" in (e.value.hint or "") and store.load(name) is None
        for c in made:
            c.reload()
            assert c.status == "running", c.name
    finally:
        for c in made:
            c.remove(force=True)

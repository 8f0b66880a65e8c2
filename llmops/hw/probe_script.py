"""The shell script that reads a host without llmops, and the argv that runs it.

``PROBE_SCRIPT`` is one POSIX shell script; it prints one ``@@llmops:NAME`` section per thing
it read (``uname``, ``/proc/meminfo``, ``df -Pk``, ``/etc/os-release``, env variable NAMES,
``nvidia-smi --query-gpu``, ``docker info``, ...). :mod:`llmops.hw.remote_probe` parses that
output (and re-exports these names). This module runs nothing.

Secrets: the script never prints the value of an environment variable except the instance ids
(``CONTAINER_ID``, ``RUNPOD_POD_ID``); of an HF token it prints only its length, first three and
last four characters (what the masked form shows).
"""

from __future__ import annotations

from collections.abc import Iterable

from llmops.hw import smi

SECTIONS = ("nvidia", "system", "docker", "platform", "hf", "tools")
MARK = "@@llmops:"
#: Instance-id variables whose values the probe reads (never API keys).
ID_VARS = ("CONTAINER_ID", "RUNPOD_POD_ID")

TOOLS = {
    "nvidia-smi": "--version",
    "nvidia-ctk": "--version",
    "docker": "--version",
    "cloudflared": "--version",
    "ngrok": "version",
    "llama-server": "--version",  # native llama.cpp on PATH (the local probe also reads
    # llmops' own engines dir; a host without llmops has none)
}

# The script takes the wanted sections as its arguments: sh -c "$PROBE_SCRIPT" probe nvidia ...
PROBE_SCRIPT = r"""
WANT=" $* "
want() { case "$WANT" in *" $1 "*) return 0;; *) return 1;; esac; }
sec() { printf '\n@@llmops:%s\n' "$1"; }
have() { command -v "$1" >/dev/null 2>&1; }
existing() { d="$1"; while [ ! -e "$d" ] && [ "$d" != / ] && [ "$d" != . ]; do d=$(dirname "$d"); done; printf '%s' "$d"; }
disk() { printf 'disk %s %s\n' "$1" "$2"; df -Pk "$(existing "$2")" 2>&1 | tail -n 1; }
state="${LLMOPS_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/llmops}"
hfhome="${HF_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/huggingface}"
hfcache="${HF_HUB_CACHE:-${HUGGINGFACE_HUB_CACHE:-$hfhome/hub}}"
dinfo=""; droot=""
if { want docker || want system; } && have docker; then
  dinfo=$(docker info --format '{{json .}}' 2>&1)
  droot=$(printf '%s' "$dinfo" | sed -n 's/.*"DockerRootDir":"\([^"]*\)".*/\1/p')
fi
if want system || want platform; then
  sec uname; uname -n; uname -r; uname -m
  sec id; id -u
  sec os-release; cat /etc/os-release 2>/dev/null
  sec container
  [ -e /.dockerenv ] && echo dockerenv
  [ -e /run/.containerenv ] && echo containerenv
  echo "container=${container:-}"
  [ -n "${KUBERNETES_SERVICE_HOST:-}" ] && echo kubernetes
  sec cgroup; head -n 50 /proc/1/cgroup 2>/dev/null
fi
if want system; then
  sec cpuinfo
  grep -m1 -E '^(model name|Model|Hardware)[[:space:]]*:' /proc/cpuinfo 2>/dev/null
  echo "threads=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null)"
  echo "cores=$(awk -F: '/^physical id/{p=$2} /^core id/{print p":"$2}' /proc/cpuinfo 2>/dev/null | sort -u | wc -l)"
  echo "usable=$(nproc 2>/dev/null)"
  echo "cpumax=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null)"
  sec meminfo; grep -E '^(MemTotal|MemAvailable|SwapTotal|SwapFree):' /proc/meminfo 2>/dev/null
  sec python; python3 -c 'import platform; print(platform.python_version())' 2>/dev/null
  sec df
  [ -d /dev/shm ] && disk shm /dev/shm
  disk hf_cache "$hfcache"
  if [ -n "$droot" ]; then disk docker_root "$droot"; elif [ -d /var/lib/docker ]; then disk docker_root /var/lib/docker; fi
  disk state "$state"
fi
if want platform; then
  sec env; env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'
  for v in CONTAINER_ID RUNPOD_POD_ID; do eval "x=\${$v:-}"; [ -n "$x" ] && echo "$v=$x"; done
  sec etc-environment
  sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}\([A-Za-z_][A-Za-z0-9_]*\)=.*/\2/p' /etc/environment 2>/dev/null
  grep -E '^[[:space:]]*(export[[:space:]]+)?(CONTAINER_ID|RUNPOD_POD_ID)=' /etc/environment 2>/dev/null | sed 's/^[[:space:]]*export[[:space:]]*//'
  sec dmi
  echo "vendor=$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null)"
  echo "product=$(cat /sys/class/dmi/id/product_name 2>/dev/null)"
  grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -qw hypervisor && echo hypervisor
fi
if want nvidia; then
  sec nvidia
  if have nvidia-smi; then
    f="@FIELDS@"
    out=$(nvidia-smi --query-gpu="$f" --format=csv,noheader,nounits 2>&1); rc=$?
    case "$out" in *"not a valid field"*)
      f="@BASIC@"
      out=$(nvidia-smi --query-gpu="$f" --format=csv,noheader,nounits 2>&1); rc=$?;;
    esac
    echo "fields=$f"; echo "rc=$rc"
    sec nvidia-gpus; printf '%s\n' "$out"
    sec nvidia-apps; nvidia-smi --query-compute-apps=@APPS@ --format=csv,noheader,nounits 2>/dev/null
    sec nvidia-q; nvidia-smi -q 2>/dev/null | grep -m1 'CUDA Version'
  else
    echo "fields="; echo "rc=127"
  fi
fi
if want docker; then
  sec docker
  have docker && echo cli=yes || echo cli=no
  have dockerd && echo daemon-bin=yes
  [ -S /var/run/docker.sock ] && echo socket=yes || echo socket=no
  echo "host=${DOCKER_HOST:-unix:///var/run/docker.sock}"
  echo "ctk=$(command -v nvidia-ctk 2>/dev/null)"
  sec docker-info; printf '%s\n' "$dinfo"
  sec docker-version; have docker && docker version --format '{{json .Server}}' 2>/dev/null
  sec cdi; grep -l 'nvidia.com/gpu' /etc/cdi/* /var/run/cdi/* 2>/dev/null
fi
if want hf; then
  sec hf
  for v in HF_TOKEN HUGGING_FACE_HUB_TOKEN; do
    eval "t=\${$v:-}"
    if [ -n "$t" ]; then echo "source=env:$v"; break; fi
  done
  if [ -z "$t" ]; then
    tf="${HF_TOKEN_PATH:-$hfhome/token}"
    [ -s "$tf" ] && t=$(tr -d ' \n\r\t' < "$tf") && echo "source=file:$tf"
  fi
  if [ -n "$t" ]; then
    echo "len=${#t}"; echo "first3=$(printf '%s' "$t" | cut -c1-3)"
    echo "last4=$(printf '%s' "$t" | tail -c 4)"
  fi
  t=""
  [ -n "${HF_HUB_OFFLINE:-}" ] && [ "${HF_HUB_OFFLINE}" != 0 ] && echo offline=1
  echo "cache=$hfcache"
  if [ -d "$hfcache" ]; then
    echo "repos=$(ls -1 "$hfcache" 2>/dev/null | grep -c -- '--')"
    echo "size_mib=$(du -sm "$hfcache" 2>/dev/null | cut -f1)"
  fi
fi
if want tools; then
  for t in @TOOLS@; do
    sec "tool:$t"
    p=$(command -v "$t" 2>/dev/null)
    echo "path=$p"
    if [ -n "$p" ]; then
      if [ "$t" = ngrok ]; then "$p" version 2>&1 | head -n 5; else "$p" --version 2>&1 | head -n 5; fi
    fi
  done
fi
sec end
"""
PROBE_SCRIPT = (
    PROBE_SCRIPT.replace("@FIELDS@", ",".join(smi.QUERY_FIELDS))
    .replace("@BASIC@", ",".join(smi.BASIC_FIELDS))
    .replace("@APPS@", ",".join(smi.APPS_FIELDS))
    .replace("@TOOLS@", " ".join(TOOLS))
)


def probe_argv(sections: Iterable[str] | None = None) -> list[str]:
    """The argv that runs the probe on a POSIX host: ``sh -c SCRIPT llmops-probe SECTION...``."""
    wanted = list(SECTIONS if sections is None else sections)
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown fact sections: {sorted(unknown)}")
    return ["sh", "-c", PROBE_SCRIPT, "llmops-probe", *wanted]

"""Rich rendering of doctor's report (imported only when a human report is printed)."""

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from llmops.cli import output
from llmops.hw.facts import HostFacts, NvidiaFacts
from llmops.plan import checks as chk

_STYLE = {chk.PASS: "green", chk.WARN: "yellow", chk.FAIL: "bold red"}


def _num(v: float | int | None, unit: str = "", fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v) + unit


def gpu_table(nv: NvidiaFacts) -> Table:
    """One row per GPU (a lost GPU is a row with its error)."""
    t = output.table(  # names and versions from a (possibly remote) host print literally
        title=f"GPUs — driver {nv.driver_version}, CUDA {nv.cuda_driver_version}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for col in ("#", "name", "memory used/total", "power draw/limit", "temp", "PCIe", "ECC", "MIG"):
        t.add_column(col, no_wrap=col in ("#", "memory used/total"))
    t.add_column("procs", justify="right")
    for g in nv.gpus:
        if not g.ok:
            t.add_row(str(g.index), Text(g.error or "error", style="bold red"), *["-"] * 7)
            continue
        mem = f"{_num(g.memory_used_mib)}/{_num(g.memory_total_mib)} MiB"
        power = f"{_num(g.power_draw_w)}/{_num(g.power_limit_w)} W"
        if g.power_min_limit_w is not None and g.power_max_limit_w is not None:
            power += f" ({g.power_min_limit_w:.0f}-{g.power_max_limit_w:.0f})"
        pcie = (
            f"gen{_num(g.pcie_gen_current)}/{_num(g.pcie_gen_max)} "
            f"x{_num(g.pcie_width_current)}/{_num(g.pcie_width_max)}"
        )
        ecc = "-" if g.ecc_enabled is None else ("on" if g.ecc_enabled else "off")
        mig = "-" if g.mig_enabled is None else ("on" if g.mig_enabled else "off")
        procs = "-" if g.processes is None else str(len(g.processes))
        t.add_row(
            str(g.index),
            g.name or "?",
            mem,
            power,
            _num(g.temperature_c, " °C"),
            pcie,
            ecc,
            mig,
            procs,
        )
    return t


def topology_table(nv: NvidiaFacts) -> Table | None:
    """A ``nvidia-smi topo -m`` style matrix: NV# for NVLink, else the PCIe relationship."""
    idx = [g.index for g in nv.healthy_gpus]
    if len(idx) < 2 or not nv.links:
        return None
    cell: dict[tuple[int, int], str] = {}
    for link in nv.links:
        label = f"NV{link.nvlink_count}" if link.nvlink_count else (link.topology or "?")
        if not link.nvlink_count and link.p2p_read not in (None, "ok"):
            label += " (no P2P)"
        cell[(link.gpu_a, link.gpu_b)] = cell[(link.gpu_b, link.gpu_a)] = label
    t = Table(title="GPU links", title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("")
    for i in idx:
        t.add_column(f"GPU{i}")
    for a in idx:
        t.add_row(f"GPU{a}", *["X" if a == b else cell.get((a, b), "?") for b in idx])
    return t


def host_summary(f: HostFacts) -> Text:
    lines: list[str] = []
    s = f.system
    if s is not None:
        where = (
            f.platform.kind
            if f.platform is not None
            else ("container" if s.in_container else "host")
        )
        lines.append(f"Host {s.hostname} · {s.os_name} · kernel {s.kernel} · {s.arch} · {where}")
        lines.append(
            f"CPU {s.cpu_model} ({s.cpu_cores} cores / {s.cpu_threads} threads) · RAM "
            f"{_num(s.ram_available_mib)}/{_num(s.ram_total_mib)} MiB available · swap "
            f"{_num(s.swap_total_mib)} MiB · /dev/shm {_num(s.shm_total_mib)} MiB"
        )
    elif f.platform is not None:
        lines.append(f"Platform {f.platform.kind}")
    if f.source != "local":
        lines.append(f"Facts from {f.source}, collected {f.collected_at}")
    return Text(output.plain("\n".join(lines)))


def checks_table(results: list[chk.Check]) -> Table:
    t = Table(title="Checks", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("status", no_wrap=True)
    t.add_column("check", no_wrap=True)
    t.add_column("details")
    for c in results:
        details = Text(c.message)
        if c.hint and c.status != chk.PASS:
            details.append("\nfix: ", style="bold")
            details.append(c.hint)
        t.add_row(Text(c.status.upper(), style=_STYLE[c.status]), c.name, details)
    return t


def render_report(console: Console, facts: HostFacts, results: list[chk.Check]) -> None:
    parts: list[Table | Text] = [host_summary(facts)]
    nv = facts.nvidia
    if nv is not None and nv.gpus:
        parts.append(gpu_table(nv))
        topo = topology_table(nv)
        if topo is not None:
            parts.append(topo)
    parts.append(checks_table(results))
    counts = {s: sum(1 for c in results if c.status == s) for s in (chk.PASS, chk.WARN, chk.FAIL)}
    parts.append(
        Text(
            f"{counts[chk.PASS]} passed, {counts[chk.WARN]} warning(s), {counts[chk.FAIL]} failed",
            style=_STYLE[chk.FAIL] if counts[chk.FAIL] else "bold",
        )
    )
    console.print(Group(*parts))

"""The README tells the truth: it stays short, names the two commands a fresh machine needs, and
links only to pages and headings that exist; the command reference (docs/cli.md) and the
catalog table (docs/planning.md) are generated and fresh."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 300

# [text](target) and ![alt](target), with an optional "title"; the text may hold code spans
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> list[str]:
    """The text outside fenced code blocks, one paragraph (blank-line separated) per item."""
    out: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            out.append("")
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            out.append("")
            continue
        out.append(line)
    return "\n".join(out).split("\n\n")


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links as their text), lowercased, everything but
    letters, digits, spaces, '-' and '_' dropped, spaces made '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for para in _prose(path.read_text()):
        for line in para.split("\n"):
            m = _HEADING.match(line)
            if not m:
                continue
            slug = github_anchor(m.group(2))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    """The targets of the markdown links in a file that point inside the repository."""
    targets: list[str] = []
    for para in _prose(path.read_text()):
        for target in _LINK.findall(_CODE_SPAN.sub("", para)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
                continue  # https:, mailto:, ...
            targets.append(target)
    return targets


def test_github_anchor_follows_githubs_rules() -> None:
    assert github_anchor("Engine pins") == "engine-pins"
    assert (
        github_anchor(
            "The bundled torch backend: `llmops serve`, `llmops quickstart`, `llmops build torch`"
        )
        == "the-bundled-torch-backend-llmops-serve-llmops-quickstart-llmops-build-torch"
    )
    assert (
        github_anchor("Figures: `python benchmarks/engines_cpu.py`")
        == "figures-python-benchmarksengines_cpupy"
    )
    assert github_anchor("Fleets: `llmops fleet doctor | ps | up MODEL --on LABEL | hosts`") == (
        "fleets-llmops-fleet-doctor--ps--up-model---on-label--hosts"
    )


def test_link_finder_skips_code_and_finds_images_and_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\nSee [a](a.md#x-y), ![img](pic.svg) and [web](https://example.com).\n\n"
        "`[not](a link)` and\n\n```text\n[nor](this.md)\n```\n\n## X: `y`\n\n## X: `y`\n"
    )
    assert relative_links(page) == ["a.md#x-y", "pic.svg"]
    assert anchors(page) == {"title", "x-y", "x-y-1"}


def test_readme_is_short() -> None:
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail into docs/"


def test_every_relative_link_resolves() -> None:
    """Every relative link in README.md and docs/*.md names an existing file, and its #anchor,
    if any, a heading of that file."""
    broken: list[str] = []
    checked = 0
    for page in _pages():
        for target in relative_links(page):
            checked += 1
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(REPO)}: ({target})"
            if not dest.exists():
                broken.append(f"{where}: no file {dest}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    assert checked > 20, "the link finder found almost no links"
    assert not broken, "\n".join(broken)


def test_readme_lists_every_docs_page() -> None:
    linked = {
        (README.parent / t.partition("#")[0]).resolve()
        for t in relative_links(README)
        if t.partition("#")[0]
    }
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md's 'Where to read more' does not link {missing}"


def test_command_reference_is_fresh() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr + r.stdout


def test_catalog_table_is_fresh() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_catalog_table.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr + r.stdout


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = README.read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def test_the_completion_the_readme_documents_works() -> None:
    readme = (REPO / "README.md").read_text()
    assert "llmops --install-completion" in readme and "llmops --show-completion" in readme
    llmops = str(Path(sys.executable).with_name("llmops"))
    # the shell is detected from the parent process: run it from bash, as a user would (two
    # commands, so that bash stays the parent instead of exec-ing llmops in its place)
    r = subprocess.run(
        ["bash", "-c", f"{llmops} --show-completion; exit $?"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "_LLMOPS_COMPLETE=complete_bash" in r.stdout
    env = {"_LLMOPS_COMPLETE": "complete_bash", "COMP_WORDS": "llmops do", "COMP_CWORD": "1"}
    import os

    r = subprocess.run([llmops], capture_output=True, text=True, env={**os.environ, **env})
    assert "doctor" in r.stdout.split()

"""Every relative link in README.md, CHANGELOG.md and docs/**/*.md leads to a file or folder of the
repository, and a `#fragment` into a Markdown file to one of its headings (GitHub's anchors); every
`tests/...py::test_name` the docs cite is a test that exists."""

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Pages that other parts of this release write; a link to one of them is accepted while it is absent.
PLANNED_PAGES = {"docs/open-inference-protocol.md"}

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _pages() -> list[Path]:
    pages = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [page for page in pages if page.is_file()]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation removed, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)       # a link in a heading: its text
    text = text.replace("`", "").replace("*", "").lower()
    kept = "".join(ch for ch in text
                   if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def _links() -> list[tuple[Path, str]]:
    return [(page, target) for page in _pages() for target in LINK.findall(_prose(page.read_text()))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]          # http:, https:, mailto:


def test_the_link_pattern_finds_links_and_skips_code():
    text = "see [a](x.md) and ![img](y.png#z), not `[b](c.md)`\n```\n[d](e.md)\n```\n"
    assert LINK.findall(_prose(text)) == ["x.md", "y.png#z"]
    assert _slug("Open Inference Protocol (KServe V2) and model repository") == \
        "open-inference-protocol-kserve-v2-and-model-repository"
    assert _slug("`AFRNN_API_KEY`: the key") == "afrnn_api_key-the-key"


@pytest.mark.parametrize("page,target", _links(),
                         ids=lambda v: v.relative_to(REPO).as_posix() if isinstance(v, Path) else v)
def test_relative_link_resolves(page, target):
    path_part, _, fragment = target.partition("#")
    resolved = (page.parent / path_part).resolve() if path_part else page
    relative = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(resolved)
    if not resolved.exists():
        if relative in PLANNED_PAGES:
            pytest.skip(f"{relative} is planned for this release and not written yet")
        pytest.fail(f"{page.relative_to(REPO)}: link {target!r} leads to {relative}, which does not exist")
    if fragment and resolved.suffix == ".md":
        assert fragment in anchors(resolved), \
            f"{page.relative_to(REPO)}: {relative} has no heading with the anchor #{fragment}"


def _test_refs() -> list[tuple[Path, str, str]]:
    return [(page, file, name) for page in _pages()
            for file, name in TEST_REF.findall(page.read_text())]


@pytest.mark.parametrize("page,file,name", _test_refs(),
                         ids=lambda v: v.relative_to(REPO).as_posix() if isinstance(v, Path) else v)
def test_cited_test_exists(page, file, name):
    path = REPO / file
    assert path.is_file(), f"{page.relative_to(REPO)} cites {file}, which does not exist"
    assert re.search(rf"^\s*(async\s+)?def {name}\(", path.read_text(), re.M), \
        f"{page.relative_to(REPO)} cites {file}::{name}, which is not a test there"

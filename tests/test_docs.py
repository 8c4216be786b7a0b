"""The README's configuration table is the settings' own table."""

from __future__ import annotations

from pathlib import Path

from signaling.config import option_table

ROOT = Path(__file__).resolve().parent.parent


def test_readme_lists_every_setting_as_configured() -> None:
    readme = (ROOT / "README.md").read_text()
    for flag, env, default, help_text in option_table():
        row = f"| `{flag}` | `{env}` | {default} | {help_text} |"
        assert row in readme, f"README is missing or out of date for {flag}: {row}"


def test_protocol_documents_every_registered_event() -> None:
    from signaling.app import create_app
    from signaling.appkeys import GATEWAY
    from signaling.config import Settings

    protocol = (ROOT / "docs" / "protocol.md").read_text()
    app = create_app(Settings(secret="x" * 40))
    for name in app[GATEWAY].event_names:
        assert f"`{name}`" in protocol, f"docs/protocol.md does not document {name}"


def test_the_architecture_names_only_files_that_exist() -> None:
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:engine|signaling|media|bench|tests|web|docs)/[\w/.]*\.\w+)`",
                           text))
    assert len(named) > 30, named
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == [], f"docs/architecture.md names files that do not exist: {missing}"


def test_the_readme_layout_links_the_architecture() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    assert "(docs/architecture.md)" in layout


def test_comments_cite_nothing_a_reader_cannot_open() -> None:
    """Figures stay beside the code they justify; notes kept outside the repository are
    not cited (a reader of a clone cannot open them)."""
    outside = ("FIELD" + "-NOTES", "../" + "shared/")
    cited = []
    for folder in ("engine", "signaling", "media", "bench", "tests", "web/static"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".js", ".html", ".css") and path.is_file():
                for number, line in enumerate(path.read_text().splitlines(), 1):
                    if any(name in line for name in outside):
                        cited.append(f"{path.relative_to(ROOT)}:{number}")
    assert cited == []

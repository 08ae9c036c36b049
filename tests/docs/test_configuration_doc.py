"""docs/configuration.md against ``service.config.Settings``: every field has a row, every row is a
field, and each documented default is the field's default; the README's table at a glance agrees."""

import re
from pathlib import Path

from service.config import Settings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"
README = REPO / "README.md"

# Settings documented ahead of their code: the repository routes and model signing. They are rows of
# the table already; until the fields exist in Settings, only these three may be rows without a field.
DOCUMENTED_AHEAD = {"model_control", "admin_key", "trusted_key"}

ROW = re.compile(r"^\| `AFRNN_([A-Z0-9_]+)` \| ([^|]*) \|")


def _settings_table(text: str) -> dict[str, str]:
    """{field: default cell} of the table under '## Settings' (up to the next '## ')."""
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1).lower()] = match.group(2).strip()
    return rows


def _glance_table(text: str) -> dict[str, str]:
    """{field: default} of the README's two-column-pair table of settings."""
    pairs = re.findall(r"\| `AFRNN_([A-Z0-9_]+)` \| ([^|]*) ", text)
    return {name.lower(): default.strip() for name, default in pairs}


def test_every_setting_has_a_row():
    rows = _settings_table(DOC.read_text())
    missing = sorted(set(Settings.model_fields) - set(rows))
    assert not missing, f"docs/configuration.md lacks rows for {missing}"


def test_every_row_is_a_setting():
    rows = _settings_table(DOC.read_text())
    unknown = sorted(set(rows) - set(Settings.model_fields) - DOCUMENTED_AHEAD)
    assert not unknown, f"docs/configuration.md documents {unknown}, which Settings does not have"


def _documented_value(cell: str):
    """The default a cell states: None for 'unset', else its first `code` value (None if none)."""
    if cell.startswith("unset"):
        return None
    code = re.match(r"`([^`]*)`", cell)
    return code.group(1) if code else ...


def test_each_documented_default_is_the_fields_default():
    rows = _settings_table(DOC.read_text())
    wrong = []
    for name, field in Settings.model_fields.items():
        if name == "model_dir":                    # a path that depends on where the package lives
            continue
        documented = _documented_value(rows[name])
        default = field.default
        if documented is ...:
            wrong.append((name, rows[name], default))
        elif documented is None or default is None:
            if documented is not default:
                wrong.append((name, documented, default))
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if float(documented) != float(default):
                wrong.append((name, documented, default))
        elif documented != str(default):
            wrong.append((name, documented, default))
    assert not wrong, f"(setting, documented, actual default): {wrong}"


def test_the_readme_lists_the_same_settings_with_the_same_defaults():
    rows = _settings_table(DOC.read_text())
    glance = _glance_table(README.read_text())
    assert set(glance) == set(rows), set(glance) ^ set(rows)
    differing = {name: (glance[name], rows[name]) for name in rows
                 if _documented_value(glance[name]) != _documented_value(rows[name])
                 and name != "model_dir"}
    assert not differing, f"README vs docs/configuration.md: {differing}"

"""docs/configuration.md against ``service.config.Settings``: every field has a row, every row is a
field, and each documented default is the field's default."""

import re
from pathlib import Path

from service.config import Settings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"

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


def test_every_setting_has_a_row():
    rows = _settings_table(DOC.read_text())
    missing = sorted(set(Settings.model_fields) - set(rows))
    assert not missing, f"docs/configuration.md lacks rows for {missing}"


def test_every_row_is_a_setting():
    rows = _settings_table(DOC.read_text())
    unknown = sorted(set(rows) - set(Settings.model_fields))
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

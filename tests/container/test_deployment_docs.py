"""The README's deployment section documents every setting the service reads from the environment."""

from pathlib import Path

from service.config import Settings

DOC = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_a_row_in_the_configuration_table():
    text = DOC.read_text()
    missing = [f"AFRNN_{name.upper()}" for name in Settings.model_fields
               if f"| `AFRNN_{name.upper()}` |" not in text]
    assert not missing, f"README's configuration table lacks {missing}"

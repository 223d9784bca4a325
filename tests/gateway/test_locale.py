"""The customer's pages' translations: every message of the German catalog is translated, and the committed .mo is
the compiled .po (Django reads the .mo; a .po edited without `manage.py compilemessages` would not show)."""
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

PO = Path(settings.BASE_DIR, "locale", "de", "LC_MESSAGES", "django.po")

pytestmark = pytest.mark.skipif(shutil.which("msgfmt") is None, reason="no msgfmt (Debian's gettext)")


def test_the_german_catalog_is_complete_and_compiled(tmp_path):
    compiled = tmp_path / "django.mo"
    result = subprocess.run(["msgfmt", "--check-format", "--statistics", "-o", str(compiled), str(PO)],
                            capture_output=True, text=True, check=True)
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr
    assert compiled.read_bytes() == PO.with_suffix(".mo").read_bytes(), "run: manage.py compilemessages -l de"

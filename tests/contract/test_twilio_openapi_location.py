"""Where tests/contract/test_twilio_openapi.py finds Twilio's OpenAPI document (issue 14): beside
the checkout wherever the checkout is (not one machine's absolute path), or where
VERIFY_TWILIO_OPENAPI says; missing, it skips on a workstation and fails loudly under CI=true.

Each case imports a copy of the module placed in a throwaway "checkout" in a subprocess (the
module decides at import), so the real document and this checkout are never in the way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MODULE = Path(__file__).resolve().parent / "test_twilio_openapi.py"
REPO = Path(__file__).resolve().parents[2]

_IMPORT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("twilio_contract_copy", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
print("PATH", module.SPEC_PATH)
print("MISSING", getattr(module, "SPEC_MISSING", None))
"""


def _checkout(tmp_path: Path, *, with_spec: bool) -> Path:
    """tmp/work/checkout/tests/contract/<module>, and tmp/work/shared/... when `with_spec`."""
    work = tmp_path / "work"
    contract = work / "checkout" / "tests" / "contract"
    contract.mkdir(parents=True)
    shutil.copy(MODULE, contract / MODULE.name)
    if with_spec:
        spec = work / "shared" / "reference" / "openapi" / "twilio_verify_v2.json"
        spec.parent.mkdir(parents=True)
        spec.write_text("{}")
    return contract / MODULE.name


def _import(module: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CI", "VERIFY_TWILIO_OPENAPI", "TWILIO_VERIFY_OPENAPI"}
    }
    environ["PYTHONPATH"] = str(REPO)  # the copy imports tests.support from this checkout
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", _IMPORT, str(module)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _lines(out: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def test_the_document_is_found_beside_the_checkout_wherever_it_is(tmp_path: Path) -> None:
    module = _checkout(tmp_path, with_spec=True)
    seen = _lines(_import(module))
    expected = tmp_path / "work" / "shared" / "reference" / "openapi" / "twilio_verify_v2.json"
    assert Path(seen["PATH"]) == expected
    assert seen["MISSING"] == "None"


def test_the_env_override_names_another_file(tmp_path: Path) -> None:
    module = _checkout(tmp_path, with_spec=True)
    other = tmp_path / "elsewhere.json"
    other.write_text("{}")
    seen = _lines(_import(module, VERIFY_TWILIO_OPENAPI=str(other)))
    assert Path(seen["PATH"]) == other
    assert seen["MISSING"] == "None"


def test_missing_on_a_workstation_skips_with_where_it_looked(tmp_path: Path) -> None:
    module = _checkout(tmp_path, with_spec=False)
    seen = _lines(_import(module))
    assert "beside the checkout" in seen["MISSING"]
    assert "VERIFY_TWILIO_OPENAPI" in seen["MISSING"]
    assert str(tmp_path / "work" / "shared") in seen["MISSING"]


def test_missing_under_ci_fails_loudly(tmp_path: Path) -> None:
    module = _checkout(tmp_path, with_spec=False)
    out = _import(module, CI="true")
    assert out.returncode != 0
    assert "Twilio's OpenAPI document is not at" in out.stderr
    assert "CI=true" in out.stderr


def test_a_missing_override_under_ci_fails_too(tmp_path: Path) -> None:
    module = _checkout(tmp_path, with_spec=True)  # the default is there; the override wins
    out = _import(module, CI="true", VERIFY_TWILIO_OPENAPI=str(tmp_path / "nope.json"))
    assert out.returncode != 0
    assert "nope.json" in out.stderr

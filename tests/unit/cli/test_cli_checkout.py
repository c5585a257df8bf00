"""`stepline up --distributed` needs the dev-only `devinfra` package, which only the source checkout has
(stepline/checkout.py): it is found beside the `stepline` package; without it the command exits with
code 2 and says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stepline import checkout
from stepline.cli import main


def test_devinfra_is_found_beside_the_stepline_package(monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = [p for p in sys.path if Path(p or ".").resolve() != checkout.CHECKOUT]
    monkeypatch.setattr(sys, "path", elsewhere)
    checkout.devinfra_on_path()
    assert sys.path[-1] == str(checkout.CHECKOUT)
    assert (checkout.CHECKOUT / "devinfra" / "__init__.py").is_file()


def test_up_distributed_without_the_checkout_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(checkout, "CHECKOUT", tmp_path)  # an installed wheel: no devinfra/ beside it
    monkeypatch.setattr(checkout, "find_spec", lambda name: None)
    assert main(["up", "--distributed", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stepline: error: distributed dev mode needs the Stepline source checkout")
    assert "devinfra/" in err

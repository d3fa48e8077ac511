"""One vocabulary on the command line: --version, help texts printed whole, old spellings hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from edgeseg import __version__
from edgeseg.cli.main import app


def _helps() -> dict[str, str]:
    runner = CliRunner()
    out = {"": runner.invoke(app, ["--help"]).output}
    for name in get_command(app).commands:
        out[name] = runner.invoke(app, [name, "--help"]).output
    return out


def test_version_option_and_command() -> None:
    for args in (["--version"], ["version"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0 and r.output.strip() == __version__


def test_help_has_no_bool_noise_and_keeps_brackets() -> None:
    helps = _helps()
    for name, text in helps.items():
        assert "<bool>" not in text, name
        assert "Output ." not in text and "folder ." not in text, name
    # Texts with brackets print them (rich markup used to eat "[default: ...]" and "[openvino]").
    assert "MODEL.int8.onnx" in helps["calibrate"] and "edgeseg[openvino]" in helps["bench"].replace("\n", "")
    assert "default: minmax" in helps["calibrate"] and "class-balanced]" in helps["calib-set"]


def test_old_spellings_hidden_and_refused_beside_the_new(tmp_path: Path) -> None:
    """--max-frames and --synthetic-num are the names; the old ones are hidden, and giving both
    spellings of one option is one clear line (exit 2) before anything is read or written."""
    helps = _helps()
    assert "--max-frames" in helps["demo"] and "--frames" not in helps["demo"]
    for cmd, old in (("eval", "--num"), ("bench", "--data-num")):
        assert "--synthetic-num" in helps[cmd] and old not in helps[cmd], cmd
    model = str(tmp_path / "m.onnx")
    for args, old in ((["eval", model, "--data", "synthetic", "--num", "2", "--synthetic-num", "2"], "--num"),
                      (["bench", model, "--synthetic-num", "2", "--data-num", "2",
                        "--out", str(tmp_path / "b")], "--data-num")):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2 and f"{old} is the old name of --synthetic-num" in r.output, r.output
    assert list(tmp_path.iterdir()) == []


WRITERS = ["train", "eval", "export", "import", "deploy", "build-engine", "calib-set", "calibrate",
           "convert-fp16", "precision-report", "int8-sensitivity", "bench", "demo", "doctor", "compare",
           "models", "info"]


@pytest.mark.parametrize("command", WRITERS)
def test_every_writing_command_takes_dash_o(command: str) -> None:
    cmd = get_command(app).commands[command]  # type: ignore[attr-defined]
    flags = {opt for p in cmd.params if p.param_type_name == "option" for opt in p.opts}
    assert {"-o", "--out"} <= flags, sorted(flags)

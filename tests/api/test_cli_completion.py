"""`itsmd completion bash|zsh`: the scripts shtab generates from the CLI's own parser
load in the shell and complete every command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from itsmd.cli.main import _parser, main

COMMANDS = [
    *("alerts", "availability", "backup", "checks", "completion", "config", "db", "explain"),
    *("export", "reconcile", "report", "restore"),
    *("incidents", "maintenance", "notifications", "problems", "replay", "rules", "run", "sla"),
]


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def complete(tmp_path: Path, source: str, *words: str) -> list[str]:
    """What bash offers for the last of `words` (`itsmd WORD...`), through the function
    the script registers for itsmd."""
    path = tmp_path / "itsmd.bash"
    path.write_text(source, encoding="utf-8")
    line = " ".join(["itsmd", *words])
    program = f"""
source {path}
function_name=$(complete -p itsmd | sed -E 's/.*-F ([^ ]+) .*/\\1/')
COMP_WORDS=(itsmd {" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words)}
COMP_LINE='{line}'
COMP_POINT={len(line)}
"$function_name" itsmd '{words[-1]}' '{words[-2] if len(words) > 1 else "itsmd"}'
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return sorted(w.strip() for w in done.stdout.splitlines() if w.strip())


def test_the_commands_the_test_expects_are_those_of_the_parser() -> None:
    sub = next(a for a in _parser()._actions if a.dest == "==SUPPRESS==" and a.choices)
    assert sorted(sub.choices) == sorted(COMMANDS)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_script_loads_and_completes_commands_actions_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = script("bash", capsys)

    assert complete(tmp_path, source, "") == sorted(COMMANDS)
    assert complete(tmp_path, source, "ma") == ["maintenance"]
    assert complete(tmp_path, source, "maintenance", "") == ["add", "delete", "end", "list"]
    assert complete(tmp_path, source, "problems", "") == [
        "known-error",
        "list",
        "resolve",
        "root-cause",
        "show",
    ]
    assert "--comment" in complete(tmp_path, source, "maintenance", "add", "--")
    assert complete(tmp_path, source, "alerts", "query", "--state", "") == [
        "firing",
        "resolved",
        "suppressed",
        "unrouted",
    ]
    assert complete(tmp_path, source, "completion", "") == ["bash", "zsh"]


def test_the_zsh_script_names_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = script("zsh", capsys)

    assert source.startswith("#compdef itsmd")
    for command in COMMANDS:
        assert f"\n    {command}:'" in source, command
    assert "--comment" in source
    if shutil.which("zsh") is not None:  # a syntax check where zsh is installed
        path = tmp_path / "_itsmd"
        path.write_text(source, encoding="utf-8")
        checked = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["completion", "fish"])
    assert exited.value.code == 2
    assert "invalid choice: 'fish'" in capsys.readouterr().err

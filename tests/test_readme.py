"""The README's commands work as written: its pytest lines select tests, its commands exist.

The README is read when the tests run, so a command added to it (or a test renamed under it) is
checked without touching this file.
"""

import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from django.core.management import get_commands

PROJECT_DIR = Path(__file__).resolve().parent.parent
README = PROJECT_DIR / "README.md"
ACTIVATE_COMMANDS = [
    ". .venv/bin/activate",
    r".venv\Scripts\activate.bat",
    r".venv\Scripts\Activate.ps1",
]
# `python` as a command of its own, not the end of a path such as .venv/bin/python.
BARE_PYTHON = re.compile(r"(?<![\w/\\.-])python (?:manage\.py|-m|-c)\b")
MANAGE_PY_COMMAND = re.compile(r"manage\.py[ \t]+([A-Za-z_]\w*)")
ENVIRONMENT_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")
COLLECT_TIMEOUT_SECONDS = 120


def code_block_lines(markdown: str) -> list[str]:
    """The lines of fenced (```) and indented (4 spaces, after a blank line) code blocks."""
    lines = []
    in_fence = in_indented = False
    previous_blank = True
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif in_fence:
            lines.append(line)
        elif line.startswith("    ") and (previous_blank or in_indented):
            in_indented = True
            lines.append(line.strip())
        elif line.strip():
            in_indented = False
        previous_blank = not line.strip()
    return lines


def pytest_commands(markdown: str) -> list[tuple[dict[str, str], list[str]]]:
    """Each pytest command in the code blocks: its environment assignments and its arguments.

    `./setup.sh && .venv/bin/python -m pytest -k x  # comment` gives ({}, ["-k", "x"]).
    """
    commands = []
    for line in code_block_lines(markdown):
        if "pytest" not in line:  # console samples may hold quotes that shlex cannot split
            continue
        # Windows paths as POSIX ones, so that shlex keeps them whole.
        words = shlex.split(line.replace("\\", "/"), comments=True)
        while words:
            command = list(itertools.takewhile(lambda word: word != "&&", words))
            words = words[len(command) + 1 :]
            environment = {}
            while command and ENVIRONMENT_ASSIGNMENT.match(command[0]):
                name, value = command.pop(0).split("=", 1)
                environment[name] = value
            if not command:
                continue
            if Path(command[0]).name == "pytest":
                arguments = command[1:]
            elif Path(command[0]).name.startswith("python") and command[1:3] == ["-m", "pytest"]:
                arguments = command[3:]
            else:
                continue
            if (environment, arguments) not in commands:
                commands.append((environment, arguments))
    return commands


def test_every_pytest_command_in_the_readme_collects_tests():
    commands = pytest_commands(README.read_text(encoding="utf-8"))
    assert commands, "no pytest command found in the README's code blocks"
    # A user's shell names no settings module: pyproject.toml does.
    environment = {
        name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"
    }
    problems = []
    for extra_environment, arguments in commands:
        finished = subprocess.run(
            [sys.executable, "-m", "pytest", *arguments, "--collect-only", "-q"],
            cwd=PROJECT_DIR,
            env={**environment, **extra_environment},
            capture_output=True,
            text=True,
            timeout=COLLECT_TIMEOUT_SECONDS,
        )
        collected = [line for line in finished.stdout.splitlines() if "::" in line]
        if finished.returncode != 0 or not collected:
            problems.append(
                f"pytest {shlex.join(arguments)}: exit {finished.returncode}, "
                f"{len(collected)} tests collected\n{finished.stdout[-2000:]}{finished.stderr}"
            )
    assert not problems, "\n\n".join(problems)


def test_every_manage_py_command_in_the_readme_exists():
    mentioned = set(MANAGE_PY_COMMAND.findall(README.read_text(encoding="utf-8")))
    assert "insert_data" in mentioned  # the pattern still finds the README's commands
    assert sorted(mentioned - set(get_commands())) == []


def test_the_readme_says_how_to_activate_the_venv_before_its_first_bare_python_command():
    readme = README.read_text(encoding="utf-8")
    first_bare_python = next(line for line in code_block_lines(readme) if BARE_PYTHON.search(line))
    before_it = readme[: readme.index(first_bare_python)]
    for command in ACTIVATE_COMMANDS:
        assert command in before_it, command

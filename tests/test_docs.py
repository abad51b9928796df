"""The README's test command is the one CI runs (.ci/run), and it starts the way the README says."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    main_job, tests = _readme_commands()[:2]
    assert main_job.startswith("pip install") and "zoo predict" in main_job
    # .ci/run installs torch's CPU build and the package first, then runs the same test command.
    ci = (ROOT / ".ci" / "run").read_text()
    test_part = tests.split(" && ")[-1]
    assert test_part == "bash tools/test_suites.sh", tests
    assert test_part in ci, f".ci/run does not run the README's test command: {test_part!r}"
    # The suites the script runs use declared markers only.
    suites = (ROOT / "tools" / "test_suites.sh").read_text()
    markers = re.findall(r'-m "([^"]+)"', suites)
    assert len(markers) == 2 and "extended" in markers[0] and "pipeline" in markers[1]
    for marker in markers:
        for name in re.findall(r"\b(?!not\b|and\b|or\b)\w+", marker):
            assert f'"{name}:' in (ROOT / "pyproject.toml").read_text(), f"marker {name!r} is not declared"


#: Files that record what was run (commands, logs, cards, release records) or tell a user what to run (README, docs):
#: a user must be able to run them as written.
_RECORDS = ("BENCHMARKS.md", "README.md", "docs", "registry.json", "benchmarks/results", "MODEL_CARDS", "weights",
            "zoo/released")
#: An absolute path given to a path option, or one under a user's or a job's folders. Allowed: the Debian package's
#: data folder (/usr/share/datasets/..., the same on every machine) and placeholders (/tmp/..., /path/to/...).
_MACHINE_PATH = re.compile(
    r"(?:--out|--output|--data-dir|--data|--init-from|--wheels)[ =]/(?!tmp/|path/)"
    r"|(?:--out|--output|--data-dir|--data|--init-from|--wheels)[ =]~/"  # a folder of one user's home
    r"|(?<![\w.])/(?:work|root|home|Users|check|mnt|data|scratch|opt|var)/"
    r"|~/zoo-runs"  # where this project's long runs live on its machines (the release notes are free text)
)


def test_committed_records_name_no_path_of_the_machine_they_were_made_on():
    files = []
    for name in _RECORDS:
        path = ROOT / name
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in {".md", ".json", ".txt", ".csv"}]
    assert len(files) > 10
    found = [
        f"{file.relative_to(ROOT)}:{number}: {line.strip()[:160]}"
        for file in files
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1)
        if _MACHINE_PATH.search(line)
    ]
    assert not found, "recorded commands or logs name a path of this machine:\n" + "\n".join(found)

"""`dr --help` must stay cheap: no pulumi, boto3, botocore or kubernetes at import."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from dr.cli.main import cli

HEAVY = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "boto3", "botocore", "kubernetes", "psycopg", "moto")


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys, json\n"
        "sys.argv = ['dr', '--help']\n"
        "from dr.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Usage: dr" in proc.stdout
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert loaded == [], f"dr --help imported heavy modules: {loaded}"


def test_every_registered_command_loads_and_has_help() -> None:
    from dr.cli.main import COMMANDS

    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "dr, version" in result.output

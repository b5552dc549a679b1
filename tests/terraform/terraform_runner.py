"""Offline tooling for the checks of the Terraform module in ``terraform/``.

Everything runs offline. Terraform installs ``hashicorp/aws`` from a local filesystem
mirror (found on this machine, never downloaded), through a CLI configuration file written
for the session. The module is copied to a temporary directory and initialised once per
session; the source tree is never written to.

A missing tool skips its tests with the reason, except under ``CI=true``, where it fails
them: CI must not go green on checks that never ran.
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO_ROOT / "terraform"
EXAMPLES = ("minimal", "compliance")

AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
# The module's constraint is ">= 5.0, < 6.0": a mirror is only useful with a 5.x build.
AWS_PROVIDER_MAJOR = "5."

# Roots where provider mirrors usually live, searched before falling back to `find /`.
# TF_PROVIDER_MIRROR, when set, is the only place looked at.
LIKELY_MIRROR_ROOTS = (
    "/opt/tf-plugins",
    "/opt/terraform/plugins",
    "/opt/terraform-plugins",
    "/usr/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/lib/terraform/plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/var/lib/terraform/plugins",
)

# A bound that only catches a hang: `terraform test` plans ~45 run blocks, each starting the
# AWS provider plugin; on a 2-core machine at load average 20 that took more than 300 s
# (CI run of 2026-11-30), so a tight bound failed a healthy run. S3ES_TERRAFORM_TIMEOUT overrides.
TERRAFORM_TIMEOUT_S = float(os.environ.get("S3ES_TERRAFORM_TIMEOUT", "1800"))
FIND_TIMEOUT_S = 120


def in_ci() -> bool:
    """Whether missing tools must fail rather than skip (CI sets CI=true)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test, or fail it under CI=true."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this check must run in CI)", pytrace=False)
    pytest.skip(reason)


def platform_dir() -> str:
    """The provider platform directory name of this machine, e.g. ``linux_amd64``."""
    arch = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(arch, arch)
    return f"{platform.system().lower()}_{arch}"


def _is_usable_mirror(root: Path) -> bool:
    """Whether ``root`` holds a 5.x AWS provider for this platform, packed or unpacked."""
    provider_dir = root / AWS_PROVIDER
    if not provider_dir.is_dir():
        return False
    plat = platform_dir()
    for entry in provider_dir.iterdir():
        # Unpacked layout: <root>/registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64/
        if (
            entry.is_dir()
            and entry.name.startswith(AWS_PROVIDER_MAJOR)
            and any((entry / plat).glob("terraform-provider-aws*"))
        ):
            return True
        # Packed layout: <root>/registry.terraform.io/hashicorp/aws/terraform-provider-aws_5.100.0_linux_amd64.zip
        if (
            entry.is_file()
            and entry.name.startswith(f"terraform-provider-aws_{AWS_PROVIDER_MAJOR}")
            and entry.name.endswith(f"_{plat}.zip")
        ):
            return True
    return False


def _mirror_root_of(found: Path) -> Path | None:
    """The mirror root above a provider file found on disk, if it sits in a mirror layout."""
    parts = found.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == ("registry.terraform.io", "hashicorp", "aws"):
            return Path(*parts[:i]) if i else None
    return None


@functools.cache
def find_provider_mirror() -> Path | None:
    """Locate a filesystem mirror holding hashicorp/aws 5.x (cached for the session).

    Looks at ``TF_PROVIDER_MIRROR`` alone when it is set; otherwise at a short list of
    likely roots, then at whatever ``find /`` turns up (skipping /proc, /sys, /dev and
    the ``.terraform`` working directories of earlier runs, which only link to a mirror).
    """
    explicit = os.environ.get("TF_PROVIDER_MIRROR")
    if explicit:
        root = Path(explicit).expanduser()
        return root if _is_usable_mirror(root) else None

    for candidate in LIKELY_MIRROR_ROOTS:
        root = Path(candidate).expanduser()
        if _is_usable_mirror(root):
            return root

    if shutil.which("find") is None:
        return None
    try:
        listing = subprocess.run(
            shlex.split(
                "find / ( -path /proc -o -path /sys -o -path /dev -o -name .terraform ) -prune"
                " -o -name 'terraform-provider-aws*' -print"
            ),
            capture_output=True,
            text=True,
            timeout=FIND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    for line in listing.stdout.splitlines():
        root = _mirror_root_of(Path(line))
        if root is not None and _is_usable_mirror(root):
            return root
    return None


def terraform_binary() -> str | None:
    """The terraform executable: ``TERRAFORM_BIN`` or the one on PATH."""
    return os.environ.get("TERRAFORM_BIN") or shutil.which("terraform")


class Terraform:
    """Runs terraform with the session's CLI configuration and no network access."""

    def __init__(self, binary: str, cli_config: Path) -> None:
        self.binary = binary
        self.env = {
            key: value
            for key, value in os.environ.items()
            # Caller-side tweaks that would change what the checks see.
            if not key.startswith(("TF_CLI_ARGS", "TF_LOG", "TF_WORKSPACE", "TF_DATA_DIR"))
        }
        self.env.update(
            TF_CLI_CONFIG_FILE=str(cli_config),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            # No upgrade and security-bulletin check against checkpoint-api.hashicorp.com.
            CHECKPOINT_DISABLE="1",
        )

    def run(
        self, args: Sequence[str], cwd: Path, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``terraform <args>`` in ``cwd``; fail the test with its output if it fails."""
        proc = subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TERRAFORM_TIMEOUT_S,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"terraform {' '.join(args)} in {cwd} exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
                pytrace=False,
            )
        return proc

    def init(self, cwd: Path) -> None:
        """``terraform init`` from the mirror only (no backend, no upgrade)."""
        self.run(["init", "-backend=false", "-input=false", "-no-color"], cwd)


def write_cli_config(path: Path, mirror: Path) -> Path:
    """Write a CLI configuration that installs the AWS provider from ``mirror`` only."""
    path.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {_hcl_string(str(mirror))}\n"
        f'    include = ["{AWS_PROVIDER}"]\n'
        "  }\n"
        "}\n",
        encoding="utf-8",
    )
    return path


def _hcl_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${")
    return f'"{escaped}"'


def copy_module(destination: Path) -> Path:
    """Copy terraform/ without working state, so runs never touch the source tree."""
    shutil.copytree(
        MODULE_DIR,
        destination,
        ignore=shutil.ignore_patterns(
            ".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "*.tfplan"
        ),
    )
    return destination

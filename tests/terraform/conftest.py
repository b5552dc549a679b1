"""Session fixtures for the Terraform module checks (see terraform_runner.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers beside this file are imported by name. pytest's default "prepend" import
# mode puts this directory on sys.path already; this keeps them importable under
# --import-mode=importlib too.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from terraform_runner import (
    AWS_PROVIDER,
    AWS_PROVIDER_MAJOR,
    Terraform,
    copy_module,
    find_provider_mirror,
    platform_dir,
    terraform_binary,
    unavailable,
    write_cli_config,
)


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """A terraform runner bound to the local provider mirror."""
    binary = terraform_binary()
    if binary is None:
        unavailable("terraform is not installed (set TERRAFORM_BIN or put it on PATH)")
    mirror = find_provider_mirror()
    if mirror is None:
        unavailable(
            f"no local filesystem mirror of {AWS_PROVIDER} {AWS_PROVIDER_MAJOR}x for "
            f"{platform_dir()} found (set TF_PROVIDER_MIRROR to its root); the checks "
            "never download providers"
        )
    config = write_cli_config(tmp_path_factory.mktemp("terraform-cli") / "cli.tfrc", mirror)
    return Terraform(binary, config)


@pytest.fixture(scope="session")
def module_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninitialised copy of terraform/ (for `terraform fmt`)."""
    return copy_module(tmp_path_factory.mktemp("module-src") / "terraform")


@pytest.fixture(scope="session")
def initialized_module(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of terraform/ with `terraform init` done once for the whole session."""
    workdir = copy_module(tmp_path_factory.mktemp("module") / "terraform")
    terraform.init(workdir)
    return workdir

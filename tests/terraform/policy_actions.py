"""The S3 actions the Terraform module grants each role, read from its HCL source.

``terraform/iam.tf`` keeps one literal list per role in a ``locals`` block
(``reader_s3_actions``, ``writer_s3_actions``, ``admin_s3_actions``). This module parses
the module with python-hcl2 (imported as ``hcl2``) so tests can compare those lists with
the S3 operations the library really issues, without running Terraform.

Self-contained on purpose (standard library and hcl2 only), so it can be imported from
any test: ``from policy_actions import declared_s3_actions`` with this directory on
``sys.path``, or loaded by file path.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

MODULE_DIR = Path(__file__).resolve().parents[2] / "terraform"

ROLES = ("reader", "writer", "admin")


def _strip_quotes(value: Any) -> Any:
    """Drop surrounding quotes and metadata keys, recursively.

    Used only with python-hcl2 releases that lack ``SerializationOptions``, so that their
    output has the same shape as ``strip_string_quotes=True, explicit_blocks=False``.
    """
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value
    if isinstance(value, list):
        return [_strip_quotes(item) for item in value]
    if isinstance(value, dict):
        return {
            _strip_quotes(key): _strip_quotes(item)
            for key, item in value.items()
            if key not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    return value


def load_hcl_file(path: Path) -> dict[str, Any]:
    """Parse one .tf file into plain Python data (strings unquoted, no comments).

    Raises:
        ModuleNotFoundError: python-hcl2 is not installed.
        lark.exceptions.LarkError: the file is not valid HCL2.
    """
    import hcl2  # optional test dependency: imported only when a test needs it

    options_type = getattr(hcl2, "SerializationOptions", None)
    with path.open(encoding="utf-8") as handle:
        if options_type is not None:
            return hcl2.load(  # type: ignore[no-any-return]
                handle,
                serialization_options=options_type(
                    with_comments=False, explicit_blocks=False, strip_string_quotes=True
                ),
            )
        data = hcl2.load(handle)
    # Releases without SerializationOptions: normalise their output to the same shape.
    return _strip_quotes(data)  # type: ignore[no-any-return]


def load_module(module_dir: Path = MODULE_DIR) -> dict[str, list[Any]]:
    """Parse every .tf file of a module and concatenate the blocks of each kind.

    Returns:
        e.g. ``{"locals": [{...}, ...], "resource": [{"aws_s3_bucket": {"this": {...}}}]}``.

    Raises:
        FileNotFoundError: the directory holds no .tf file.
        ModuleNotFoundError: python-hcl2 is not installed.
    """
    files = tuple(sorted(module_dir.glob("*.tf")))
    if not files:
        raise FileNotFoundError(f"no .tf files in {module_dir}")
    stamps = tuple((path, path.stat().st_mtime_ns) for path in files)
    return copy.deepcopy(_parse_files(stamps))


@functools.cache
def _parse_files(stamps: tuple[tuple[Path, int], ...]) -> dict[str, list[Any]]:
    """Parse once per file version: python-hcl2 takes about 0.1 s per file."""
    blocks: dict[str, list[Any]] = {}
    for path, _ in stamps:
        for kind, entries in load_hcl_file(path).items():
            blocks.setdefault(kind, []).extend(entries)
    return blocks


def module_locals(module_dir: Path = MODULE_DIR) -> dict[str, Any]:
    """All ``locals`` of a module merged into one mapping.

    Raises:
        ValueError: a local is defined twice (Terraform refuses that too).
    """
    merged: dict[str, Any] = {}
    for block in load_module(module_dir).get("locals", []):
        for name, value in block.items():
            if name in merged:
                raise ValueError(f"local.{name} is defined more than once in {module_dir}")
            merged[name] = value
    return merged


def declared_s3_actions(module_dir: Path = MODULE_DIR) -> dict[str, set[str]]:
    """The S3 actions each role's policy grants, as declared in the module's locals.

    Returns:
        ``{"reader": {...}, "writer": {...}, "admin": {...}}``, e.g.
        ``{"reader": {"s3:GetObject", "s3:ListBucket"}, ...}``.

    Raises:
        KeyError: a ``<role>_s3_actions`` local is missing.
        TypeError: a list is not a literal list of literal strings (an expression such as
            ``concat(...)`` cannot be read without Terraform; keep the lists literal).
        ModuleNotFoundError: python-hcl2 is not installed.
    """
    found = module_locals(module_dir)
    actions: dict[str, set[str]] = {}
    for role in ROLES:
        name = f"{role}_s3_actions"
        if name not in found:
            raise KeyError(f"local.{name} is not declared in {module_dir}")
        value = found[name]
        if not isinstance(value, list) or not all(
            isinstance(item, str) and item.startswith("s3:") and "${" not in item for item in value
        ):
            raise TypeError(
                f'local.{name} must be a literal list of "s3:..." strings, got {value!r}'
            )
        actions[role] = set(value)
    return actions

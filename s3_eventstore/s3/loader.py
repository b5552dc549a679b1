"""botocore's data loader for a process that only ever makes S3 clients: same data, less work.

Creating the first client of a process loads botocore's JSON data: the S3 service model
and endpoint rules, ``endpoints.json`` (1.2 MB), the partitions, retry and default
configuration files. botocore's own loader does two things a one-service client does
not need (measured in docs/BENCHMARKS.md, "CLI start-up"):

* before loading a service model it lists every service botocore knows (a listdir and
  a few stats for each of ~400 folders), once per model type, just to check that the
  asked-for name is one of them. :class:`ServiceLoader` asks the service's own folder
  instead, and falls back to botocore's path (and its ``UnknownServiceError``) when the
  service is not there.
* it parses JSON with :mod:`json` into ``OrderedDict`` objects. :class:`OrjsonFileLoader`
  parses with orjson (a dependency already) into dicts, which keep insertion order too.
  orjson reads an integer wider than 64 bits as a float, silently, so a file holding a
  run of 19 or more digits anywhere is parsed by :mod:`json`, as is a file orjson
  refuses (a lone surrogate): exactly as botocore would.

Only the shared session (:func:`s3_eventstore.s3.pool.shared_session`) uses them; a
session the caller passes in keeps botocore's loader.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

import orjson
from botocore.exceptions import DataNotFoundError
from botocore.loaders import ExtrasProcessor, Loader, instance_cache

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["OrjsonFileLoader", "ServiceLoader", "create_service_loader"]

_OPENERS: tuple[tuple[str, Callable[..., Any]], ...] = ((".json", open), (".json.gz", gzip.open))
"""The file forms botocore reads, in its order: plain JSON first, then gzipped."""
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"0123456789", b"0000000000")
_WIDE_DIGIT_RUN: Final = b"0" * 19
"""19 digits in a row could be an integer orjson would turn into a float (> 64 bits);
every integer of 18 digits or fewer fits. (Digits inside strings count too; json then
parses.) Found by translating every digit to ``0`` and searching for 19 of them: a
regular expression takes ~50x longer over the 3 MB botocore loads."""


class OrjsonFileLoader:
    """botocore's ``JSONFileLoader`` interface (``exists``, ``load_file``), parsing with
    orjson. The same files, tried in the same order, give equal data (key order included)."""

    def exists(self, file_path: str) -> bool:
        """Whether ``file_path`` (without extension) exists as ``.json`` or ``.json.gz``."""
        return any(os.path.isfile(file_path + ext) for ext, _ in _OPENERS)

    def load_file(self, file_path: str) -> Any:
        """The data of ``file_path`` + ``.json`` or ``.json.gz``; ``None`` if neither exists.

        Raises:
            json.JSONDecodeError: the file is not valid JSON (as botocore's own loader).
        """
        for ext, opener in _OPENERS:
            path = file_path + ext
            if not os.path.isfile(path):
                continue
            with opener(path, "rb") as stream:
                payload = stream.read()
            if _WIDE_DIGIT_RUN not in payload.translate(_DIGITS_AS_ZERO):
                try:
                    return orjson.loads(payload)
                except orjson.JSONDecodeError:
                    pass
            return json.loads(payload.decode("utf-8"), object_pairs_hook=OrderedDict)
        return None


class ServiceLoader(Loader):  # type: ignore[misc]
    """botocore's ``Loader``, except that loading one service's model does not first list
    every service in every search path."""

    @instance_cache  # type: ignore[untyped-decorator]
    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None
    ) -> Any:
        """The service model, as botocore's ``Loader.load_service_model`` returns it.

        Raises:
            UnknownServiceError: no search path holds ``service_name`` with ``type_name``.
            DataNotFoundError: the model file could not be found.
        """
        if api_version is not None:
            return super().load_service_model(service_name, type_name, api_version)
        try:
            # Lists the service's own folder in each search path; raises when none holds
            # ``type_name`` -- exactly when botocore's listing would not know the service.
            api_version = self.determine_latest_version(service_name, type_name)
        except DataNotFoundError:
            return super().load_service_model(service_name, type_name)  # its error message
        model = self.load_data(os.path.join(service_name, api_version, type_name))
        ExtrasProcessor().process(model, self._extras(service_name, api_version, type_name))
        return model

    def _extras(self, service_name: str, api_version: str, type_name: str) -> Iterator[Any]:
        for extras_type in self.extras_types:
            name = os.path.join(service_name, api_version, f"{type_name}.{extras_type}-extras")
            try:
                yield self.load_data(name)
            except DataNotFoundError:
                continue


def create_service_loader(data_path: str | None) -> ServiceLoader:
    """The loader for a session whose ``data_path`` setting (``AWS_DATA_PATH``, the config
    file's ``data_path``) is ``data_path``: those folders are searched first, as botocore's
    ``create_loader`` does."""
    paths = [
        os.path.expanduser(os.path.expandvars(path))
        for path in (data_path.split(os.pathsep) if data_path else [])
    ]
    return ServiceLoader(extra_search_paths=paths, file_loader=OrjsonFileLoader())

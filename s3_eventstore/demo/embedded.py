"""An S3 server on loopback for the demo, tests and benchmarks: moto's server mode.

Needs the ``server`` extra (``pip install 's3-eventstore[server]'``). The server runs
in a background thread of this process and keeps its buckets in memory; it listens
on 127.0.0.1 only and on a free port.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Self

from s3_eventstore.errors import MissingExtraError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["EmbeddedS3Server"]

CREDENTIALS: Final = {
    "aws_access_key_id": "embedded",
    "aws_secret_access_key": "embedded-secret",
    "region_name": "us-east-1",
}
"""Fixed credentials: the embedded server accepts any, and no AWS account is involved."""


class EmbeddedS3Server:
    """A moto S3 server on ``127.0.0.1``; a context manager that starts and stops it."""

    def __init__(self, port: int = 0) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as err:  # pragma: no cover - depends on the install
            raise MissingExtraError("the embedded S3 server needs moto", extra="server") from err
        # Werkzeug logs every request at INFO on stderr; keep demo and test output readable.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""
        self._session: Any = None

    def start(self) -> Self:
        """Start serving; sets :attr:`endpoint_url`."""
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving (buckets are lost)."""
        self._server.stop()

    def session(self) -> Any:
        """An ``aioboto3.Session`` with credentials the server accepts: the same one on
        every call, since a session parses botocore's S3 model (~0.2 s of CPU) once and
        every client created from it reuses the parse. Clients copy the session's event
        hooks, so what one client registers does not reach the others."""
        if self._session is None:
            import aioboto3

            self._session = aioboto3.Session(**CREDENTIALS)
        return self._session

    def reset(self) -> None:
        """Delete every bucket and object (moto's ``/moto-api/reset``)."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

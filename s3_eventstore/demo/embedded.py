"""An S3 server on loopback for the demo, tests and benchmarks: moto's server mode.

Needs the ``server`` extra (``pip install 's3-eventstore[server]'``). The server runs
in a background thread of this process and keeps its buckets in memory; it listens
on 127.0.0.1 only and on a free port.
"""

from __future__ import annotations

import logging
import threading
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


class _S3Fast:
    """WSGI app: requests signed for S3 go straight to moto's S3 app; anything else
    (``/moto-api``, presigned URLs, other services) through moto's own dispatcher.

    moto's dispatcher finds each request's service by listing moto's package directory
    (a ``listdir`` and about 150 ``isdir`` calls per request, under a lock): about a
    sixth of the CPU an S3 request costs here. For a request whose signature names the
    service, the answer is known: the same app, without the search.
    """

    def __init__(self, dispatcher: Any) -> None:
        self._dispatcher = dispatcher
        self._s3: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self._s3 is None or not self._signed_for_s3(environ):
            app = self._dispatcher.get_application(environ)
            if getattr(app, "service", None) == "s3" and self._signed_for_s3(environ):
                self._s3 = app  # moto keeps one app per service: the same one every time
            return app(environ, start_response)
        return self._s3(environ, start_response)

    @staticmethod
    def _signed_for_s3(environ: dict[str, Any]) -> bool:
        path = environ.get("PATH_INFO", "")
        return "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", "") and not path.startswith(
            ("/moto-api", "/latest/", "/favicon.ico")
        )


class EmbeddedS3Server:
    """A moto S3 server on ``127.0.0.1``; a context manager that starts and stops it."""

    def __init__(self, port: int = 0) -> None:
        try:
            import moto.server  # noqa: F401  # the server extra (what ThreadedMotoServer runs)
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
        except ImportError as err:  # pragma: no cover - depends on the install
            raise MissingExtraError("the embedded S3 server needs moto", extra="server") from err
        # Werkzeug logs every request at INFO on stderr; keep demo and test output readable.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._app = _S3Fast(DomainDispatcherApplication(create_backend_app))
        self._handler = MotoRequestHandler
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.endpoint_url = ""
        self._session: Any = None

    def start(self) -> Self:
        """Start serving; sets :attr:`endpoint_url`.

        Raises:
            OSError: the port cannot be listened on.
        """
        if self._thread is None:
            from werkzeug.serving import make_server

            self._server = make_server(
                "127.0.0.1", self._port, self._app, threaded=True, request_handler=self._handler
            )
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="embedded-s3", daemon=True
            )
            self._thread.start()
            host, port = self._server.server_address[:2]
            self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving (buckets are lost)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()
            self._thread = None

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

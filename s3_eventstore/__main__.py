"""``python -m s3_eventstore``: the same as the ``s3-eventstore`` command."""

from s3_eventstore.cli import main

main()

"""The demo, the synthetic workload it and the benchmarks write, and an embedded S3 server.

Nothing in the library proper imports this package; the CLI's ``demo`` command, the
benchmarks and the tests do.
"""

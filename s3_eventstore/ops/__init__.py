"""Operator tools over the public API: catalog, export, analytics, costs, doctor.

Nothing below this package imports it; the CLI is its main user.
"""

"""Maintainer tools that write into a zoo checkout: release staging and publishing.

Not part of the installed ``zoo`` package: the library never writes into its own folder.
Run them from a checkout (``python scripts/release.py``, ``python scripts/publish.py``).
"""

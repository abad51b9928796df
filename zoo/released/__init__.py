"""Release records (``<arch>.<tag>.json``): hashes, metrics and locations of released weights.

Written by ``scripts/release.py`` and ``scripts/publish.py --register``; read by the registry.
"""

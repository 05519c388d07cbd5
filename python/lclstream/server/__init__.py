"""The REST service (``lclstream serve``): LCLS' transfer API v2 over lclstream's pipeline.

``app`` (FastAPI routes), ``requests`` (the bodies a client may POST and the configs they
become), ``runner`` (one worker process per transfer), ``store`` (SQLite records),
``auth`` (bearer tokens).
"""

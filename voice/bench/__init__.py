"""``voice bench``: latency of a running server, measured from the client side.

Modules: ``clips`` (clips and their offline end of speech), ``timeline`` and ``stats``
(I/O-free timing arithmetic), ``client`` (one WebSocket session), ``turns`` (the scripted
turn and barge-in), ``runner`` (warm-up and concurrency levels), ``report`` and ``chart``
(tables, JSON, PNG), ``command`` (the CLI).
"""

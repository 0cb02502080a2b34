"""``voice bench``: latency of a running server, measured from the client side.

Modules: ``clips`` (clips and their offline end of speech), ``timeline`` and ``stats``
(I/O-free timing arithmetic), ``transport`` (what a call must do, on any transport),
``client`` (one WebSocket session), ``webrtc_audio`` (I/O-free WebRTC frame pacing and
heard-audio arithmetic) and ``webrtc_call`` (one aiortc WebRTC call), ``turns`` (the
scripted turn and barge-in), ``runner`` (warm-up and concurrency levels), ``report`` and
``chart`` (tables, JSON, PNG), ``command`` (the CLI).
"""

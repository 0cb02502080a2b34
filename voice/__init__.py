"""Self-hosted real-time voice companion server speaking the OpenAI Realtime API."""

__version__ = "0.1.0"

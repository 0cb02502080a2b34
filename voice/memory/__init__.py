"""Persistent, per-user memory: encrypted facts, running summaries and transcripts.

``crypto`` seals text at rest, ``store`` keeps it in SQLite or PostgreSQL (every query
scoped by user id), ``extract`` asks the chat model what to remember, ``recorder`` runs
that for one live session, and ``api`` lets users see and delete what is kept.
Submodules are imported explicitly; this package imports nothing so that light users
(the settings validate a memory key) do not load the database stack.
"""

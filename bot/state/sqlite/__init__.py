"""The parts of the SQLite store, which bot.state.store.Store composes.

db (the connection and its plumbing), schema (tables and migrations), ledger, settings (guild
settings, named values, interaction claims), follows (and DM channels) and questions (session Q&A).
The PostgreSQL store has the same parts in bot.state.postgres.
"""

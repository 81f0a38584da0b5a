"""What is recorded: the ledger (SQLite), the journal, atomic file writes."""

"""The engine: the one Lua commit (store), arq job records, codes, message texts and the outbox."""

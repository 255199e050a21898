"""The conversation store: tables, sessions, migrations and the functions that write them."""

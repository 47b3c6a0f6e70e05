"""Storage pieces shared by the transports (the group-commit writer)."""

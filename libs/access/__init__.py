"""Access control: API keys, roles, workspaces (who may do what)."""

"""Who may call what: credentials (API keys, JWT), the role-by-route policy, rate and size limits."""

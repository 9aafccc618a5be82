"""Event contracts: the CloudEvents envelope and one module of typed payloads per producer."""

"""The merged OpenAPI document of every service behind the gateway, and the generated AsyncAPI document."""

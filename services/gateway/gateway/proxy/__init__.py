"""Routes the services' public endpoints through the gateway, unchanged."""

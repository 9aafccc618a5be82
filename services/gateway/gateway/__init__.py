"""gateway: the one front door — routing to the services, the composed customer view, API docs."""

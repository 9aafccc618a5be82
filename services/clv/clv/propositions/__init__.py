"""Value propositions: catalogue, next-best assignment, deliveries and outcomes, performance and the value gap."""

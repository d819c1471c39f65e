"""One router per resource: predict, feedback, health/ready, metrics, admin."""

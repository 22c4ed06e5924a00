"""A bundle's report: an HTML page with PNG figures of its scores, thresholds and training,
written beside the bundle (`report/`) so the service can serve it."""

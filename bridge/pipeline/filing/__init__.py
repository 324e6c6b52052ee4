"""A stored report becomes a tracker issue: classify, route, plan the sprint, file once."""

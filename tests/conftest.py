pytest_plugins = ["shared.testing.fixtures", "shared.testing.route_gate"]

"""Example setups, one folder each: an event schema, a feature spec, settings and a synthetic world."""

"""The event contract: the fields, entities and validation rules of the events the worker scores."""

"""The HTTP layer: dependencies and one router per concern."""

"""HTTP API and the static operator page (no front-end build step)."""

from edge.api.app import AppContext, create_app

__all__ = ["AppContext", "create_app"]

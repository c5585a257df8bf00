"""HTTP routers of the trigger service, one per concept."""

"""The small software catalog: entities in the entry store (entities.py, store.py) and the catalog
events that announce their changes (events.py)."""

"""The drive page: an aiohttp server (server.py) and a static page (static/)."""

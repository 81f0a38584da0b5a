"""``ratchet ui``: a live dashboard over a study's ledger (Starlette on uvicorn).

Importing this package imports nothing from the web stack; ``command`` loads
Starlette and uvicorn only when the dashboard starts, so Ratchet works
without the ``ui`` extra.
"""

__all__: list[str] = []

"""`kiosk-central serve`: the authority's dashboard in a browser (Starlette, Jinja2, uvicorn).

Needs the `dashboard` extra (`pip install 'kiosk[central,dashboard]'`); the rest of
central runs without it.
"""

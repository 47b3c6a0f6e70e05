"""`tickethub serve`: the services over HTTP (FastAPI on uvicorn).

Imported only by the `serve` command and by tests: no other command loads fastapi,
starlette or uvicorn (start-up of one-shot commands stays that of a bare Typer app).
"""

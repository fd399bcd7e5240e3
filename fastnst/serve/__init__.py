"""``fastnst serve``: an HTTP API and a web page over the stylize pipeline (FastAPI + uvicorn, optional extra)."""

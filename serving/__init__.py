"""How models are used: the FastAPI app, storage, auth, widget and rep views."""

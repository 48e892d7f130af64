"""What the API does, without HTTP: templates, the library, sessions. No FastAPI imports."""

"""SafeLLM's web layer: the REST API (`app.api.create_app`); imports `safellm`, never the reverse."""

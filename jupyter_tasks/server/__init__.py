"""The Jupyter server extension: REST + websocket API, workers and reaper inside the server."""

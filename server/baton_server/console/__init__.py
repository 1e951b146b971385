"""The web console's page, scripts and vendored libraries (served by the HTTP gateway)."""

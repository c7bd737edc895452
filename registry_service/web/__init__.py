"""The HTTP surfaces: the admin port, the HTTP/JSON API, Server-Sent Events, the console."""

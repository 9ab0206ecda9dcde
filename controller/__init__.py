"""The truyenthanh controller: REST API, MQTT bridge, database, provisioning and the CLI.

`app.create_app(settings)` builds the ASGI app; `cli` holds the `truyenthanh` command.
"""

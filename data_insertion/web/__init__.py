"""The dashboard (views, templates, static files), the REST API and the event stream: thin
layers over the runs app and the engine. An app of its own so its templates and static files
are found."""

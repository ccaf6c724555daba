"""The sync console: an Airflow 3 plugin's FastAPI app (status, review queue, person page).

Nothing here is imported when Airflow loads plugins: the plugin module (plugins/cc_sync_console.py)
builds the app on its first request, in the API server only.
"""

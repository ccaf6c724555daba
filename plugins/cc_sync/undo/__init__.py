"""Undo a run from its change log: the pure plan (``plan``) and the DAG steps around it (``steps``)."""

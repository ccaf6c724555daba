"""Send a member segment to a Constant Contact list: the send-list job's logic.

- :mod:`.form`: what the trigger form needs when the DAG file is parsed (modes, the mapping's
  segments and fields); standard library and the mapping only.
- :mod:`.send`: plan and send (who is sent, who is skipped and why; the import, the links, the
  change log), as plain functions of hooks; the DAG (dags/constant_contact_send_list.py) wraps
  them in the shared job lifecycle (:mod:`cc_sync.job`).
"""

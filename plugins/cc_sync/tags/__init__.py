"""Member columns kept as Constant Contact tags: the sync DAG's ``tags`` task (after load).

- :mod:`.rules`: the mapping's tag rules -> each linked member's desired tag values, and a
  contact's tag ids -> the values CC holds (pure pandas).
- :mod:`.plan`: the three-way merge per member and tag column against the base
  (``ccsync_tag_base``): which contacts to tag and untag per tag, which member columns a two-way
  rule writes back, and the conflicts for review (pure pandas, no I/O).
- :mod:`.step`: reads the inputs, writes CC (the bulk tagging activities), the member column, the
  base, the change log and the reviews.

Tagging never subscribes or unsubscribes anyone: an opted-out contact's tags follow the member
like anyone else's, and its permission to send is not touched.
"""

"""Lists kept by rule (issue 18, part 2): the mapping's ``list_rules`` bind a segment to a Constant
Contact list, and the scheduled sync's ``list_rules`` task keeps the list equal to the segment.

- :mod:`.plan`: what a rule adds and removes (pure pandas);
- :mod:`.steps`: the task's step (reads, guard rail, dry run, the bulk membership activities, the
  change log).
"""

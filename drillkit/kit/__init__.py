"""The drill kit: what drills share. The frame that records and cleans up, the pace that times waits,
actions (verbs that change the system), probes (queries that do not) and checks (expectations judged
from evidence). Drills import the kit; the kit never imports a drill."""

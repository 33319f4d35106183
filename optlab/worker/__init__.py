"""The engine process: 2-D runs and sweeps computed beside a server, not in its threads.

Every torch call gives up the interpreter lock and must take it back. In a
server process the page threads hold that lock for milliseconds at a time
(building figures, encoding messages), so a 500-step run, a few thousand
torch calls, waited up to the lock's switch interval (5 ms) for each: 30 steps
beside one busy Python thread took 6 s instead of 10 ms (docs/load-test.md).
In a process of its own, whose threads do nothing but torch calls, the lock
changes hands within microseconds.

`client.EngineProcess` starts ``python -m optlab.worker`` and hands it jobs
over a socket pair; `child` is what runs there: one thread per job, records
sent back in chunks as they come, a job stopped when its page stops asking.
Its threads compute side by side, handing the lock to each other between
torch calls, so a quick change never waits for the whole of a long run.
(Taking 50 ms turns of two slots, as the pages' own runs do, made the
learning-rate change slower for a class of 30 and helped nothing else:
docs/load-test.md.)
The process loads the same optimizer registry as the server (packs and
plugins come from the same environment); a run it cannot take (an optimizer
only the server knows, a config that does not pickle) or one it dies during
is computed in the page's thread instead, as without it.

Off by default (the ``engine_process`` cap): for a class of 30 it made the
pages' changes faster, but at 100 attendees the pages' Python, no longer
waiting for torch, kept each replica's interpreter lock so busy that its
event loop answered more slowly (docs/load-test.md).
"""

"""The decision core: a pure function from (spec, status, observation, now) to a Decision.

Nothing here does I/O, reads a clock or draws a random number, so every rule is tested by
table in milliseconds and a whole rollout can be replayed against recorded observations.
"""

"""The loop: APScheduler wiring, and observe -> decide -> act for each Canary."""

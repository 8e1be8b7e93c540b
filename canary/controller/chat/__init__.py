"""Chat notifications: what a rollout's message says (`render`), which engine notices a
notification is told of (`events`), the background worker that sends without ever making a tick
wait (`outbox`), and the per-tick entry point (`publisher`). It talks to the `Chat` port only;
the composition roots hand it the factories of the chat adapters."""

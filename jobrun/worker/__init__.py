"""The worker side of a service: what is in flight, the loop that acquires and dispatches,
and maintenance (one duty per module). `Service` wires them; nothing here imports it."""

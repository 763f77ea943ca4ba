"""The operations side: logs, metrics, systemd, reload, alerts, stats, explain. Nothing in
the core (store, worker, scheduler, producer API) needs these to run jobs."""

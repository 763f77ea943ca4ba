"""The console's keys (each action's binding; `?` and the footer list them from here) and
its layout's CSS: what a user presses and sees, apart from what the keys do (app.py,
commands.py)."""

from __future__ import annotations

from textual.binding import Binding, BindingType

CSS = """
#head { height: auto; max-height: 3; }
#queues { height: auto; max-height: 8; }
#title { height: 1; background: $boost; }
#jobs { height: 1fr; }
#filter { height: 1; border: none; padding: 0 1; display: none; }
#filter.open { display: block; }
DataTable { border-left: blank; }
DataTable:focus { border-left: thick $accent; }
DataTable > .datatable--cursor { text-style: bold reverse; }
#status { height: auto; max-height: 3; }
Confirm, Help { align: center middle; }
#question { width: auto; max-width: 90%; border: heavy $warning; padding: 0 1; }
#help { width: auto; max-width: 100%; border: heavy $accent; padding: 0 1; }
"""
BINDINGS: list[BindingType] = [
    Binding("q", "quit", "quit"),
    Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    Binding("question_mark", "help", "help", key_display="?"),
    Binding("slash", "filter", "filter", key_display="/"),
    Binding("s", "state(1)", "state"),
    Binding("S", "state(-1)", "state", show=False),
    Binding("r", "ask('retry')", "retry"),
    Binding("c", "ask('cancel')", "cancel"),
    Binding("d", "ask('delete')", "delete"),
    Binding("R", "bulk('retry')", "retry all", show=False),
    Binding("C", "bulk('cancel')", "cancel all", show=False),
    Binding("D", "bulk('delete')", "delete all", show=False),
    Binding("p", "pause", "pause"),
    Binding("o", "overview", "charts"),
    Binding("w", "why", "why", show=False),
    Binding("n", "search_all", "search on", show=False),
    Binding("plus", "scale(1)", "more", key_display="+", show=False),
    Binding("minus", "scale(-1)", "fewer", key_display="-", show=False),
    Binding("equals_sign", "reset", "reset", key_display="=", show=False),
    Binding("escape", "clear", "back", show=False),
]
